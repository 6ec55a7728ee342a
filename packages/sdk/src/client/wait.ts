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

/** The host did not reach the awaited status in time. */
export class MusterWaitTimeoutError extends MusterError {
  override name = "MusterWaitTimeoutError";
  constructor(
    message: string,
    /** The host as last seen, if it was seen at all. */
    readonly lastSeen: Host | null,
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
export async function waitForHostStatus(
  get: (signal: AbortSignal) => Promise<Host>,
  status: Host["status"],
  options: WaitOptions = {},
): Promise<Host> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const interval = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let lastSeen: Host | null = null;
  try {
    for (;;) {
      const host = await get(signal);
      lastSeen = host;
      options.onPoll?.(host);
      if (host.status === status) return host;
      await sleep(interval, signal);
    }
  } catch (error) {
    if (deadline.aborted && !options.signal?.aborted) {
      const last = lastSeen ? ` (last seen ${lastSeen.status})` : "";
      throw new MusterWaitTimeoutError(`host did not become ${status} within ${timeoutMs} ms${last}`, lastSeen);
    }
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
