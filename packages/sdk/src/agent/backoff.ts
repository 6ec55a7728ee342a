/** Bounds of the retry delay after a failed heartbeat (SPEC §7: 1 s → 60 s). */
export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 60_000;

/** Heartbeats come every interval × [HEARTBEAT_JITTER_MIN, 1): jitter only ever shortens it, so it never meets the offline deadline later. */
export const HEARTBEAT_JITTER_MIN = 0.8;

/**
 * Delay before the next attempt after `failures` consecutive failures (1, 2, …):
 * "equal jitter" — uniform in [b/2, b] with b = min(60 s, 2^failures s). So the
 * first retry waits 1–2 s, the sixth and later 30–60 s: never under 1 s, never
 * over 60 s, and never the same across a fleet that lost the control plane at
 * the same moment.
 */
export function backoffDelayMs(failures: number, random: () => number): number {
  const exponent = Math.min(Math.max(failures, 1), 16);
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** exponent);
  return clamp(ceiling / 2 + (ceiling / 2) * random(), BACKOFF_MIN_MS, BACKOFF_MAX_MS);
}

/**
 * Delay before retrying a refused or failed call: the backoff, or longer when
 * the control plane asked for a pause (429 or 503 with Retry-After), never
 * over 60 s.
 */
export function retryDelayMs(failures: number, random: () => number, retryAfterS: number | null): number {
  const backoff = backoffDelayMs(failures, random);
  return retryAfterS === null ? backoff : Math.min(BACKOFF_MAX_MS, Math.max(backoff, retryAfterS * 1000));
}

/** Delay to the next heartbeat for the interval the control plane asked for. */
export function heartbeatDelayMs(intervalS: number, random: () => number): number {
  const intervalMs = intervalS * 1000;
  return intervalMs * (HEARTBEAT_JITTER_MIN + (1 - HEARTBEAT_JITTER_MIN) * random());
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
