import { MusterApiError, type MeResponse } from "@muster/sdk/client";
import { useState } from "preact/hooks";
import { ErrorPanel } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { clientFor, storeKey } from "../session.js";

/** Sign in with an operator API key; it is checked with GET /v1/me before it is kept (in sessionStorage). */
export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn(key: string, me: MeResponse): void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [pending, setPending] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setPending(true);
    setError(null);
    try {
      const me = await clientFor(key.trim()).me();
      storeKey(key.trim());
      onSignedIn(key.trim(), me);
    } catch (caught) {
      setError(caught);
    } finally {
      setPending(false);
    }
  };

  return (
    <main class="signin" id="main">
      <PageTitle title="Sign in">Muster console</PageTitle>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      <form onSubmit={submit}>
        <label for="api-key">Operator API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          placeholder="msk_…"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <p class="muted">
          Kept in this tab only (sessionStorage) until you sign out or close it. The admin key is printed once, at the control plane's first start.
        </p>
        <button type="submit" class="primary" disabled={pending || key.trim() === ""}>
          {pending ? "Signing in…" : "Sign in"}
        </button>
      </form>
      {error instanceof MusterApiError && error.status === 401 ? (
        <div class="error" role="alert">
          <strong>That key is not accepted</strong>
          <p>{error.message}</p>
        </div>
      ) : (
        <ErrorPanel error={error} />
      )}
    </main>
  );
}
