import { MusterApiError } from "@muster/sdk/client";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { useSession } from "./session.js";

/**
 * How the console stays live, in one place. Today it polls: a view loads,
 * then loads again every few seconds while the tab is visible. When the
 * control plane's event stream (GET /v1/events) exists, this module
 * subscribes to it instead and reloads a view when an event concerns it;
 * no page changes.
 */
export const LIVE_REFRESH_MS = 3_000;

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Loads again now (after an action changed what the view shows). */
  refresh(): void;
}

export interface LoadOptions {
  /** Reload every this many ms while the tab is visible; null: load once (and on refresh()). */
  refreshMs?: number | null;
}

/**
 * Loads what a view shows, again whenever `deps` change, and keeps it live.
 * The last data stays on screen while the next load runs and if it fails;
 * a key the API no longer accepts (401) signs the console out.
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], options: LoadOptions = {}): Loaded<T> {
  const { signOut } = useSession();
  const refreshMs = options.refreshMs === undefined ? LIVE_REFRESH_MS : options.refreshMs;
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [generation, setGeneration] = useState(0);
  const latest = useRef(load);
  latest.current = load;

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      setState((previous) => ({ ...previous, loading: true }));
      try {
        const data = await latest.current(controller.signal);
        if (!controller.signal.aborted) setState({ data, error: null, loading: false });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof MusterApiError && error.status === 401) return signOut("The API key is no longer accepted: sign in again.");
        setState((previous) => ({ ...previous, error, loading: false }));
      }
      if (refreshMs !== null && !controller.signal.aborted) timer = setTimeout(tick, refreshMs);
    };
    const tick = () => {
      // A hidden tab waits; it loads at once when shown again.
      if (document.visibilityState === "visible") void run();
    };
    const onVisible = () => {
      if (document.visibilityState === "visible" && refreshMs !== null) {
        clearTimeout(timer);
        void run();
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
    // The caller's deps decide when to load anew; `load` itself is read through a ref.
  }, [...deps, generation, refreshMs]);

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
