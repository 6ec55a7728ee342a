import { MusterApiError, MusterConnectionError } from "@muster/sdk/client";

const TITLES: Record<number, string> = {
  400: "The request was refused",
  403: "Your role does not allow this",
  404: "Not found",
  409: "Conflict",
  429: "Too many requests",
  503: "The control plane is not ready",
};

/** An error from the API, said in full: what happened, the API's code and message, and the request ID to find it in the logs. */
export function ErrorPanel({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  if (error instanceof MusterApiError) {
    const title = error.status === 404 && what ? `${what} not found` : (TITLES[error.status] ?? "The control plane answered with an error");
    return (
      <div class="error" role="alert">
        <strong>{title}</strong>
        <p>
          {error.message} <span class="muted">({error.status} {error.code}{error.requestId ? `, request ${error.requestId}` : ""})</span>
        </p>
        {error.status === 404 && what ? <p class="muted">It may have been deleted, or it belongs to a team your key cannot see.</p> : null}
      </div>
    );
  }
  const message = error instanceof MusterConnectionError ? `${error.message}. Check the control plane is running.` : String(error);
  return (
    <div class="error" role="alert">
      <strong>No answer from the control plane</strong>
      <p>{message}</p>
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** A status as text and colour, never colour alone. */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status}`}>{status}</span>;
}
