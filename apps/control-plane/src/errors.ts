import type { ErrorCode } from "@muster/contract";

/**
 * The one error type of the domain. Services throw it; a single adapter in the
 * HTTP layer turns it into the envelope. It carries a code, never a status.
 */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterS?: number,
    /** Fields the envelope's error object carries besides code and message (SPEC additions such as `oldest_id`). */
    readonly fields?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const invalid = (message: string) => new DomainError("invalid_request", message);
export const unauthorized = (message: string) => new DomainError("unauthorized", message);
export const forbidden = (message: string) => new DomainError("forbidden", message);
export const notFound = (what: string) => new DomainError("not_found", `${what} not found`);
export const conflict = (message: string) => new DomainError("conflict", message);
export const unsupportedMediaType = (message: string) => new DomainError("unsupported_media_type", message);
