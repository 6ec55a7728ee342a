import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
  heartbeats: Counter;
  firstBeatsDeferred: Counter;
  offlineSweepHeld: Gauge;
  hostTransitions: Counter<"to">;
  hosts: Gauge<"status">;
  credentialCacheTrusted: Gauge;
}

/**
 * One registry per app instance (not prom-client's global one), so tests and
 * several apps in one process keep their figures apart. `countHosts` and
 * `credentialsTrusted` are read at scrape time.
 */
export function createMetrics(
  countHosts: () => Promise<{ status: string; count: number }[]>,
  credentialsTrusted: () => boolean,
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "muster_process_" });
  return {
    registry,
    httpRequests: new Counter({
      name: "muster_http_requests_total",
      help: "HTTP requests by method, route pattern and status",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "muster_http_request_duration_seconds",
      help: "HTTP request duration by method and route pattern",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    heartbeats: new Counter({ name: "muster_heartbeats_total", help: "Accepted heartbeats", registers: [registry] }),
    firstBeatsDeferred: new Counter({
      name: "muster_first_beats_deferred_total",
      help: "First beats told to come back later (429) to spread a fleet's arrival under the pacing cap",
      registers: [registry],
    }),
    offlineSweepHeld: new Gauge({
      name: "muster_offline_sweep_held",
      help: "1 while the offline sweeper holds its transitions because a large share of the fleet went silent at once (alert on it)",
      registers: [registry],
    }),
    hostTransitions: new Counter({
      name: "muster_host_status_transitions_total",
      help: "Host status changes made by this process",
      labelNames: ["to"],
      registers: [registry],
    }),
    hosts: new Gauge({
      name: "muster_hosts",
      help: "Hosts by status",
      labelNames: ["status"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { status, count } of await countHosts()) this.set({ status }, count);
      },
    }),
    credentialCacheTrusted: new Gauge({
      name: "muster_credential_cache_trusted",
      help: "1 while this process answers heartbeats from its copy of hosts' credential states; 0 while the KV store's announcements may be lost (reconnecting, failing over) and every beat reads the state from the stores",
      registers: [registry],
      collect() {
        this.set(credentialsTrusted() ? 1 : 0);
      },
    }),
  };
}
