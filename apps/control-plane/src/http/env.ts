import type { HostClaims } from "../auth/host-tokens.js";
import type { Database } from "../db/client.js";
import type { EventHub } from "../events/hub.js";
import type { Actor } from "../services/actor.js";
import type { ServiceDeps } from "../services/context.js";
import type { Liveness } from "../services/liveness.js";

/** What the app is built from: the services' dependencies plus what only the HTTP surface needs. */
export interface AppDeps extends ServiceDeps {
  liveness: Liveness;
  /** This process's end of the event log: GET /v1/events streams. */
  events: EventHub;
  /** Each answers when its store is reachable and throws when not; /readyz runs them all. */
  readiness: Record<string, () => Promise<void>>;
}

export type { Database };

export interface AppEnv {
  Variables: {
    requestId: string;
    deps: AppDeps;
    actor: Actor;
    hostClaims: HostClaims;
  };
}
