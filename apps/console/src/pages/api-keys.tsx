import type { ApiKey } from "@muster/sdk/client";
import { useState } from "preact/hooks";
import { ConfirmButton } from "../components/confirm.js";
import { CodeBlock } from "../components/copy.js";
import { ErrorPanel, Loading } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { Pager, useCursor } from "../components/pager.js";
import { dateTime, timeAgo } from "../format.js";
import { useAction, useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";

const LIFETIMES: [string, number | null][] = [
  ["never expires", null],
  ["30 days", 30 * 86_400],
  ["90 days", 90 * 86_400],
  ["1 year", 365 * 86_400],
];

export function ApiKeys() {
  const { client, me } = useSession();
  const can = abilitiesOf(me);
  const pager = useCursor("");
  const keys = useLoad((signal) => client.apiKeys.listPage({ limit: 100, ...(pager.cursor ? { cursor: pager.cursor } : {}) }, { signal }), [pager.cursor]);
  const [name, setName] = useState("");
  const [lifetime, setLifetime] = useState(0);
  const [userId, setUserId] = useState("");
  const [teamId, setTeamId] = useState("");
  const create = useAction(async () => {
    const expires = LIFETIMES[lifetime]![1];
    const created = await client.apiKeys.create({
      name: name.trim(),
      ...(expires ? { expires_in_s: expires } : {}),
      ...(userId.trim() ? { user_id: userId.trim() } : {}),
      ...(teamId.trim() ? { team_id: teamId.trim() } : {}),
    });
    setName("");
    keys.refresh();
    return created;
  });
  // Revoking the key this console signed in with ends the session: the reload after it is refused (401), which signs out.
  const revoke = useAction(async (key: ApiKey) => {
    await client.apiKeys.revoke(key.id);
    keys.refresh();
  });
  const isMine = (key: ApiKey) => key.user_id === me.user.id;

  return (
    <section>
      <PageTitle title="API keys">API keys</PageTitle>
      <p class="muted">{can.createKeysForOthers ? "Every key of every user." : "Your own keys; the secret of a key is shown only when it is created."}</p>
      <ErrorPanel error={keys.error} />
      {keys.data ? (
        <>
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Starts with</th>
                  <th scope="col" class="wide">User / team</th>
                  <th scope="col">Last used</th>
                  <th scope="col" class="wide">Expires</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {keys.data.items.map((key) => (
                  <tr key={key.id} data-key={key.id}>
                    <td>{key.name}</td>
                    <td class="mono">{key.start}…</td>
                    <td class="wide mono small">
                      {isMine(key) ? "you" : key.user_id}
                      {key.team_id ? ` / ${key.team_id}` : ""}
                    </td>
                    <td>{timeAgo(key.last_used_at)}</td>
                    <td class="wide">{key.expires_at ? dateTime(key.expires_at) : "never"}</td>
                    <td>
                      {can.revokeKey(key) ? (
                        <ConfirmButton
                          label="Revoke"
                          title={`Revoke ${key.name}?`}
                          confirmLabel="Revoke"
                          danger
                          onConfirm={() => revoke.run(key)}
                        >
                          <p>The key stops working at once, everywhere it is used.</p>
                        </ConfirmButton>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager pager={pager} nextCursor={keys.data.next_cursor} count={keys.data.items.length} />
        </>
      ) : keys.error ? null : (
        <Loading what="API keys" />
      )}
      <ErrorPanel error={revoke.error} />

      <h2>Create a key</h2>
      <form
        class="stacked"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <label for="key-name">Name</label>
        <input id="key-name" required value={name} placeholder="e.g. ci deploys" onInput={(e) => setName(e.currentTarget.value)} />
        <label for="key-lifetime">Lifetime</label>
        <select id="key-lifetime" value={String(lifetime)} onChange={(e) => setLifetime(Number(e.currentTarget.value))}>
          {LIFETIMES.map(([label], index) => (
            <option key={label} value={String(index)}>
              {label}
            </option>
          ))}
        </select>
        {can.createKeysForOthers ? (
          <>
            <label for="key-user">For user (ID; empty: you)</label>
            <input id="key-user" value={userId} placeholder="usr-…" onInput={(e) => setUserId(e.currentTarget.value)} />
            <label for="key-team">Acting in team (ID; empty: none, or the user's team)</label>
            <input id="key-team" value={teamId} placeholder="team-…" onInput={(e) => setTeamId(e.currentTarget.value)} />
          </>
        ) : (
          <p class="muted">The key is yours and acts in {me.team?.name ?? "your team"} with your role.</p>
        )}
        <button type="submit" class="primary" disabled={create.pending || !name.trim()}>
          Create key
        </button>
      </form>
      <ErrorPanel error={create.error} />
      {create.result ? (
        <div class="notice" role="status">
          <p>
            <strong>Key {create.result.api_key.name} created.</strong> Copy it now: it is shown this once and never again.
          </p>
          <CodeBlock id="new-api-key" text={create.result.key} copyLabel="Copy key" />
        </div>
      ) : null}
    </section>
  );
}
