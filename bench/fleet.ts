import { Agent, request } from "undici";
import { Presets, SingleBar } from "cli-progress";
import { routes } from "@muster/contract";
import { Transport } from "@muster/sdk";
import { ClusterSpread } from "./cluster.js";
import { enrollHosts, freshStores, median, startControlPlane, type EnrolledHost } from "./lib.js";

/**
 * A simulated fleet against one or several real control planes: hosts enrolled
 * through the API, each beating at the server's interval with jitter, spread
 * over the planes. Part of the fleet is silenced on purpose; at the end the
 * simulator reports throughput, latency, errors, hosts marked offline that
 * never went silent (false transitions) and how late each silenced host was
 * marked offline after its deadline. On a Redis Cluster (REDIS_CLUSTER_NODES)
 * it also reports how the run's keys and load spread over the masters.
 */
const HOSTS = Number(process.env.FLEET_HOSTS ?? 10_000);
const PLANES = Number(process.env.FLEET_PLANES ?? (process.env.DATABASE_URL ? 2 : 1));
const INTERVAL_S = Number(process.env.FLEET_INTERVAL_S ?? 10);
const OFFLINE_AFTER_S = Number(process.env.FLEET_OFFLINE_AFTER_S ?? 3 * INTERVAL_S);
const DURATION_S = Number(process.env.FLEET_DURATION_S ?? 120);
const SILENCED_SHARE = Number(process.env.FLEET_SILENCED_SHARE ?? 0.01);

if (PLANES > 1 && !process.env.DATABASE_URL) {
  process.stderr.write(
    "Several control planes share PostgreSQL + Redis: set DATABASE_URL and REDIS_URL or REDIS_CLUSTER_NODES (see scripts/services.sh).\n",
  );
  process.exit(2);
}

interface SimHost extends EnrolledHost {
  plane: number;
  silencedAt: number | null;
  lastAcceptedBeat: number;
}

/** One bar per phase; the phases run one after the other. */
function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({ format: ` ${label} |{bar}| {value}/{total} {detail}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, Presets.shades_classic);
  bar.start(total, 0, { detail: "" });
  return bar;
}

async function main() {
  const started = Date.now();
  const stores = await freshStores();
  const env = { MUSTER_HEARTBEAT_INTERVAL_S: String(INTERVAL_S), MUSTER_OFFLINE_AFTER_S: String(OFFLINE_AFTER_S) };
  const planes: Awaited<ReturnType<typeof startControlPlane>>[] = [];
  for (let i = 0; i < PLANES; i++) planes.push(await startControlPlane(`plane-${i}`, env, stores));
  process.stdout.write(
    `Fleet simulator: ${HOSTS.toLocaleString("en")} hosts, ${PLANES} control plane(s), interval ${INTERVAL_S} s, offline after ${OFFLINE_AFTER_S} s, ${DURATION_S} s of beats\n`,
  );

  const enrolling = progress("enrol  hosts  ", HOSTS);
  const enrolled = await enrollHosts(planes[0]!.url, stores.adminKey, HOSTS, 32, (done) => enrolling.update(done));
  enrolling.update(HOSTS, { detail: `in ${((Date.now() - started) / 1000).toFixed(0)} s` });
  enrolling.stop();

  const clusterNodes = process.env.REDIS_CLUSTER_NODES?.split(",");
  const cluster = clusterNodes ? await ClusterSpread.open(clusterNodes, stores.env.MUSTER_KV_PREFIX!) : null;
  await cluster?.mark();

  const fleet: SimHost[] = enrolled.map((host, i) => ({ ...host, plane: i % PLANES, silencedAt: null, lastAcceptedBeat: 0 }));
  const dispatcher = new Agent({ connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let beats = 0;
  let errors = 0;
  const errorKinds = new Map<string, number>();

  const beat = async (host: SimHost) => {
    const sent = performance.now();
    try {
      const response = await request(`${planes[host.plane]!.url}/v1/hosts/${host.id}/heartbeat`, {
        method: "POST",
        headers: { "x-host-token": host.token },
        dispatcher,
      });
      await response.body.dump();
      latencies.push(performance.now() - sent);
      if (response.statusCode === 204) {
        beats++;
        host.lastAcceptedBeat = Date.now();
      } else {
        errors++;
        errorKinds.set(String(response.statusCode), (errorKinds.get(String(response.statusCode)) ?? 0) + 1);
      }
    } catch (error) {
      errors++;
      const kind = (error as { code?: string }).code ?? "network";
      errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
    }
  };

  // Each host's next beat: the first spread over one interval, then interval × [0.8, 1) like the agent.
  const due = fleet.map(() => Date.now() + Math.random() * INTERVAL_S * 1000);
  const silenceAt = Date.now() + (DURATION_S * 1000) / 3;
  const silenced = new Set(
    fleet
      .map((_, i) => i)
      .sort(() => Math.random() - 0.5)
      .slice(0, Math.round(HOSTS * SILENCED_SHARE)),
  );
  const end = Date.now() + DURATION_S * 1000;
  const running = progress("beat   seconds", DURATION_S);
  const inFlight = new Set<Promise<void>>();
  while (Date.now() < end) {
    const now = Date.now();
    for (let i = 0; i < fleet.length; i++) {
      if (due[i]! > now) continue;
      const host = fleet[i]!;
      if (silenced.has(i) && now >= silenceAt) {
        host.silencedAt ??= now;
        due[i] = Number.POSITIVE_INFINITY;
        continue;
      }
      due[i] = now + INTERVAL_S * 1000 * (0.8 + Math.random() * 0.2);
      const pending = beat(host).finally(() => inFlight.delete(pending));
      inFlight.add(pending);
    }
    const elapsed = Math.floor((now - (end - DURATION_S * 1000)) / 1000);
    running.update(Math.min(DURATION_S, elapsed), { detail: `${beats.toLocaleString("en")} beats, ${errors} errors, ${inFlight.size} in flight` });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await Promise.all(inFlight);
  running.stop();
  const spread = (await cluster?.report()) ?? [];

  // Give the sweeper the rest of the silenced hosts' window, plus its 2 s promise.
  const lastDeadline = Math.max(...fleet.filter((h) => h.silencedAt !== null).map((h) => h.lastAcceptedBeat + OFFLINE_AFTER_S * 1000), Date.now());
  const settle = progress("settle seconds", Math.max(1, Math.ceil((lastDeadline + 3000 - Date.now()) / 1000)));
  while (Date.now() < lastDeadline + 3000) {
    settle.increment();
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  settle.stop();

  const operator = new Transport({ baseUrl: planes[0]!.url, authHeaders: () => ({ authorization: `Bearer ${stores.adminKey}` }) });
  const offlineAt = new Map<string, number>();
  for (let cursor: string | undefined; ; ) {
    const page = await operator.call(routes.listAudit, { query: { action: "host.offline", limit: 500, ...(cursor ? { cursor } : {}) } });
    for (const entry of page.items) offlineAt.set(entry.target_id, Date.parse(entry.created_at));
    if (page.next_cursor === null) break;
    cursor = page.next_cursor;
  }
  const silencedHosts = fleet.filter((h) => h.silencedAt !== null);
  const falseOffline = fleet.filter((h) => h.silencedAt === null && offlineAt.has(h.id)).length;
  const missed = silencedHosts.filter((h) => !offlineAt.has(h.id)).length;
  const lags = silencedHosts
    .filter((h) => offlineAt.has(h.id))
    .map((h) => offlineAt.get(h.id)! - (h.lastAcceptedBeat + OFFLINE_AFTER_S * 1000));
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(1) : "-");

  const lines = [
    ["heartbeats accepted", `${beats.toLocaleString("en")} (${(beats / DURATION_S).toFixed(0)}/s)`],
    ["latency p50 / p99", `${pct(0.5)} / ${pct(0.99)} ms`],
    ["errors", `${errors}${errorKinds.size ? ` (${[...errorKinds].map(([k, n]) => `${k}: ${n}`).join(", ")})` : ""}`],
    ["hosts silenced on purpose", String(silencedHosts.length)],
    ["  marked offline", `${silencedHosts.length - missed} (missed: ${missed})`],
    ["  lag after deadline p50 / max", lags.length ? `${median(lags)} / ${Math.max(...lags)} ms` : "-"],
    ["false offline transitions", String(falseOffline)],
  ];
  process.stdout.write("\n" + lines.map(([k, v]) => `  ${k!.padEnd(32)} ${v}`).join("\n") + "\n");
  if (spread.length > 0) process.stdout.write(`\n${spread.join("\n")}\n`);
  await cluster?.close();

  await dispatcher.close();
  for (const plane of planes) await plane.stop();
  await stores.dispose();
  if (falseOffline > 0 || missed > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
