/**
 * Telling a backing store that cannot be reached (answered with 503, or
 * served around where a fallback exists) from every other failure.
 */

// Connection-level failures of PostgreSQL (postgres.js codes and SQLSTATE classes 08 and 57P), of sockets, and the KV port's own.
const UNAVAILABLE_CODES = new Set([
  "KV_UNAVAILABLE",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01",
  "57P02",
  "57P03",
]);

/** The error and its causes, nearest first (a few deep at most). */
export function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current && chain.length < 5; current = (current as { cause?: unknown }).cause) {
    chain.push(current);
  }
  return chain;
}

export function isStoreUnavailable(error: unknown): boolean {
  return causes(error).some((cause) => {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof code === "string" && (UNAVAILABLE_CODES.has(code) || code.startsWith("08"))) return true;
    return typeof message === "string" && /connect ECONNREFUSED/.test(message);
  });
}
