import { MusterApiError, type MusterClient, type MusterEvent } from "@muster/sdk/client";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { useSession } from "./session.js";

/** What a live view hears from the feed. */
interface Listener {
  /** Whether this event may change what the view shows. */
  matches(event: MusterEvent): boolean;
  changed(): void;
  /** The stream (re)connected at this time (Date.now()): anything the view loaded before may have missed an event. */
  connected(at: number): void;
}

/** After the stream was refused for a reason backoff cannot mend (a 403, the log past its retention), it is opened anew this much later. */
const REOPEN_MS = 5_000;

/**
 * The console's one event stream (GET /v1/events through the SDK's
 * events.watch, the API key in the Authorization header like every other
 * call), shared by every live view of a signed-in tab. The SDK reconnects
 * with backoff and resumes after the last event, so a dropped connection or a
 * restarted control plane loses nothing; when it gives up (410: the tab slept
 * past the log's retention), the feed opens the stream again from now and
 * every view reloads, since each reloads when the stream connects.
 */
export class LiveFeed {
  private readonly listeners = new Set<Listener>();
  private readonly stopped = new AbortController();

  constructor(
    private readonly client: MusterClient,
    /** The API no longer accepts the key (401). */
    private readonly onKeyRefused: () => void,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped.abort();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async run(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      try {
        const events = this.client.events.watch({
          types: ["host.*", "command.*"],
          signal,
          onConnect: () => this.listeners.forEach((listener) => listener.connected(Date.now())),
        });
        for await (const event of events) this.listeners.forEach((listener) => listener.matches(event) && listener.changed());
      } catch (error) {
        if (error instanceof MusterApiError && error.status === 401) return this.onKeyRefused();
      }
      await new Promise((resolve) => setTimeout(resolve, REOPEN_MS));
    }
  }
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Loads again now (after an action changed what the view shows). */
  refresh(): void;
}

export interface LoadOptions {
  /** Load again when an event of the stream passes this test; without it, the view loads once (and on refresh()). */
  live?: (event: MusterEvent) => boolean;
  /** However many events arrive, loads start at most this often (a view that costs many requests asks for more). */
  minIntervalMs?: number;
  /** Load again this often too, for what the stream does not carry (the audit log, heartbeats' figures). */
  refreshMs?: number;
}

const MIN_INTERVAL_MS = 500;

/**
 * Loads what a view shows, again whenever `deps` change, and keeps it live:
 * reloaded when the event stream says something it shows changed, at most
 * once per interval, and only while the tab is visible (a hidden tab loads
 * when shown again if anything changed meanwhile). The last data stays on
 * screen while the next load runs and if it fails; a key the API no longer
 * accepts (401) signs the console out.
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], options: LoadOptions = {}): Loaded<T> {
  const { signOut, live } = useSession();
  const { refreshMs, minIntervalMs = MIN_INTERVAL_MS } = options;
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [generation, setGeneration] = useState(0);
  const latest = useRef({ load, matches: options.live });
  latest.current = { load, matches: options.live };
  const isLive = options.live !== undefined;

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let running = false;
    let stale = false;
    let lastStart = -Infinity;
    const run = async () => {
      running = true;
      stale = false;
      lastStart = Date.now();
      setState((previous) => ({ ...previous, loading: true }));
      try {
        const data = await latest.current.load(controller.signal);
        if (!controller.signal.aborted) setState({ data, error: null, loading: false });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof MusterApiError && error.status === 401) return signOut("The API key is no longer accepted: sign in again.");
        setState((previous) => ({ ...previous, error, loading: false }));
      } finally {
        running = false;
      }
      if (controller.signal.aborted) return;
      if (stale) request();
      else if (refreshMs !== undefined) timer = setTimeout(request, refreshMs);
    };
    /** Something shown may have changed: load again once, when visible, not sooner than the interval after the last start. */
    const request = () => {
      if (running || document.visibilityState !== "visible") {
        stale = true;
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(() => void run(), Math.max(0, lastStart + minIntervalMs - Date.now()));
    };
    const onVisible = () => {
      if (document.visibilityState === "visible" && stale && !running) request();
    };
    document.addEventListener("visibilitychange", onVisible);
    const unsubscribe = isLive
      ? live.subscribe({
          matches: (event) => latest.current.matches?.(event) ?? false,
          changed: request,
          connected: (at) => lastStart < at && request(),
        })
      : undefined;
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
      unsubscribe?.();
      document.removeEventListener("visibilitychange", onVisible);
    };
    // The caller's deps decide when to load anew; `load` and the event test are read through a ref.
  }, [...deps, generation, refreshMs, minIntervalMs, isLive]);

  const refresh = useCallback(() => setGeneration((g) => g + 1), []);
  return { ...state, refresh };
}

export interface Action<A extends unknown[], R> {
  run(...args: A): Promise<R | undefined>;
  pending: boolean;
  error: unknown;
  result: R | undefined;
  reset(): void;
}

/** A change the operator asks for: its progress, its result, its error (shown, never swallowed). */
export function useAction<A extends unknown[], R>(act: (...args: A) => Promise<R>): Action<A, R> {
  const { signOut } = useSession();
  const [state, setState] = useState<{ pending: boolean; error: unknown; result: R | undefined }>({ pending: false, error: null, result: undefined });
  const run = async (...args: A) => {
    setState({ pending: true, error: null, result: undefined });
    try {
      const result = await act(...args);
      setState({ pending: false, error: null, result });
      return result;
    } catch (error) {
      if (error instanceof MusterApiError && error.status === 401) {
        signOut("The API key is no longer accepted: sign in again.");
        return undefined;
      }
      setState({ pending: false, error, result: undefined });
      return undefined;
    }
  };
  return { ...state, run, reset: () => setState({ pending: false, error: null, result: undefined }) };
}
