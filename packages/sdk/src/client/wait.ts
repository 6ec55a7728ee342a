import type { routes } from "@muster/contract";
import { MusterError } from "../errors.js";
import type { ResponseOf } from "./types.js";

type Host = ResponseOf<typeof routes.getHost>;

export interface WaitOptions {
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  /** Time between two looks at the host (default 2 s). */
  pollIntervalMs?: number;
  signal?: AbortSignal;
  /** Called with the host after every look, e.g. to show progress. */
  onPoll?: (host: Host) => void;
}

const DEFAULT_WAIT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_POLL_INTERVAL_MS = 2_000;

/** The host (or command) did not reach the awaited state in time. */
export class MusterWaitTimeoutError<T = Host> extends MusterError {
  override name = "MusterWaitTimeoutError";
  constructor(
    message: string,
    /** What was last seen, if anything was seen at all. */
    readonly lastSeen: T | null,
  ) {
    super(message);
  }
}

/**
 * Polls rather than streams: the API has no watch endpoint, and status
 * changes (a first heartbeat) are visible on the next GET. API errors (a
 * deleted host's 404) end the wait at once; the transport already retries a
 * GET that fails for network reasons.
 */
export function waitForHostStatus(
  get: (signal: AbortSignal) => Promise<Host>,
  status: Host["status"],
  options: WaitOptions = {},
): Promise<Host> {
  return pollUntil(get, (host) => host.status === status, options, (timeoutMs, last) => {
    const seen = last ? ` (last seen ${last.status})` : "";
    return `host did not become ${status} within ${timeoutMs} ms${seen}`;
  });
}

export interface PollOptions<T> {
  timeoutMs?: number;
  pollIntervalMs?: number;
  signal?: AbortSignal;
  onPoll?: (value: T) => void;
}

/** Calls `get` every poll interval until `done` holds; a timeout throws MusterWaitTimeoutError with the last value. */
export async function pollUntil<T>(
  get: (signal: AbortSignal) => Promise<T>,
  done: (value: T) => boolean,
  options: PollOptions<T>,
  timeoutMessage: (timeoutMs: number, lastSeen: T | null) => string,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const interval = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let lastSeen: T | null = null;
  try {
    for (;;) {
      const value = await get(signal);
      lastSeen = value;
      options.onPoll?.(value);
      if (done(value)) return value;
      await sleep(interval, signal);
    }
  } catch (error) {
    if (deadline.aborted && !options.signal?.aborted) throw new MusterWaitTimeoutError<T>(timeoutMessage(timeoutMs, lastSeen), lastSeen);
    throw error;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => (clearTimeout(timer), reject(signal.reason));
    const timer = setTimeout(() => (signal.removeEventListener("abort", onAbort), resolve()), ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
