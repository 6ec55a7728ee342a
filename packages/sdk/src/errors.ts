import type { ErrorCode } from "@muster/contract";

/** Everything the SDK throws is a MusterError; `instanceof` on the subclasses tells what went wrong. */
export class MusterError extends Error {
  override name = "MusterError";
}

/** The API answered with an error envelope (or something that should have been one). */
export class MusterApiError extends MusterError {
  override name = "MusterApiError";
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly requestId: string | null,
    /** Seconds the API asked the caller to wait (429, 503). */
    readonly retryAfterS: number | null,
    /** The envelope's other fields, e.g. `oldest_id` with a 410 from the event stream. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** No answer: the control plane could not be reached, the connection broke, or the call timed out. */
export class MusterConnectionError extends MusterError {
  override name = "MusterConnectionError";
  constructor(
    message: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
