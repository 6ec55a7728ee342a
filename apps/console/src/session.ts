import { MusterClient, type MeResponse } from "@muster/sdk/client";
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { LiveFeed } from "./live.js";

/*
 * The operator's API key lives in sessionStorage only: gone when the tab
 * closes, never in a URL, never in a cookie (so no request carries it but
 * the console's own, in the Authorization header).
 */
const STORAGE_KEY = "muster.console.api_key";

export const storedKey = (): string | null => sessionStorage.getItem(STORAGE_KEY);
export const storeKey = (key: string): void => sessionStorage.setItem(STORAGE_KEY, key);
export const forgetKey = (): void => sessionStorage.removeItem(STORAGE_KEY);

/** A client of the control plane that served the console: the same origin, so the page's CSP allows it. */
export function clientFor(apiKey: string): MusterClient {
  return new MusterClient({ baseUrl: location.origin, apiKey, maxRetries: 1, timeoutMs: 15_000 });
}

export interface Session {
  client: MusterClient;
  me: MeResponse;
  /** The tab's one event stream, which live views listen to. */
  live: LiveFeed;
  signOut(reason?: string): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in console");
  return session;
}
