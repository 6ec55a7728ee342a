import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Presets, SingleBar } from "cli-progress";
import { routes } from "@muster/contract";
import { Transport } from "@muster/sdk";
import { ClusterSpread } from "./cluster.js";
import type { FromWorker, ToWorker, WorkerCounts, WorkerHost } from "./fleet-worker.js";
import { cpuSeconds, enrollHosts, freshStores, median, ROOT, startControlPlane } from "./lib.js";

/**
 * A simulated fleet against one or several real control planes: hosts enrolled
 * through the API, then beating at the server's interval with the agent's
 * jitter, spread over the planes. In channel mode (the default, as real agents
 * do) every host beats over HTTP for one interval (coming online) and
 * FLEET_HTTP_S more, then opens its channel and beats over it, falling back to
 * HTTP while it is down; FLEET_MODE=http keeps every beat on HTTP. Part of the fleet is silenced on purpose. At the end:
 * throughput by lane, control-plane CPU per beat on each lane, memory per
 * connected host, errors, hosts marked offline that never went silent (false
 * transitions) and how late each silenced host was marked offline. On a
 * Redis Cluster (REDIS_CLUSTER_NODES) it also reports how the run's keys and
 * load spread over the masters.
 */
const HOSTS = Number(process.env.FLEET_HOSTS ?? 10_000);
const PLANES = Number(process.env.FLEET_PLANES ?? (process.env.DATABASE_URL ? 2 : 1));
const MODE = process.env.FLEET_MODE ?? "channel";
const INTERVAL_S = Number(process.env.FLEET_INTERVAL_S ?? 10);
const OFFLINE_AFTER_S = Number(process.env.FLEET_OFFLINE_AFTER_S ?? 3 * INTERVAL_S);
const DURATION_S = Number(process.env.FLEET_DURATION_S ?? 120);
const HTTP_S = Number(process.env.FLEET_HTTP_S ?? 20);
const SILENCED_SHARE = Number(process.env.FLEET_SILENCED_SHARE ?? 0.01);
/** Hosts per simulator process: each holds a socket per host, and a process may hold only so many. */
const WORKER_HOSTS = Number(process.env.FLEET_WORKER_HOSTS ?? 10_000);
const DIAL_PARALLEL = 50;
const IDLE_BASELINE_S = 5;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

if (MODE !== "channel" && MODE !== "http") fail(`FLEET_MODE is "channel" (the default) or "http", not "${MODE}"`);
if (PLANES > 1 && !process.env.DATABASE_URL) fail("Several control planes share PostgreSQL + Redis: set DATABASE_URL and REDIS_URL or REDIS_CLUSTER_NODES (see scripts/services.sh).");
const channels = MODE === "channel";
const openFiles = Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim());
const perPlane = Math.ceil(HOSTS / PLANES);
if (channels && Number.isFinite(openFiles) && perPlane + 1000 > openFiles) {
  fail(
    `Each control plane would hold ${perPlane.toLocaleString("en")} channels, one socket each, but a process may open ${openFiles.toLocaleString("en")} files here (ulimit -n). ` +
      `Raise the limit, or spread the fleet over more control planes (FLEET_PLANES=${Math.ceil(HOSTS / (openFiles - 1000))} or more, with PostgreSQL + Redis).`,
  );
}

/** One bar per phase; the phases run one after the other. */
function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({ format: ` ${label} |{bar}| {value}/{total} {detail}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, Presets.shades_classic);
  bar.start(total, 0, { detail: "" });
  return bar;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Worker {
  child: ChildProcess;
  hosts: WorkerHost[];
  counts: WorkerCounts;
  silenced: { id: string; lastBeatAt: number }[];
  stopped: Promise<void>;
}

function startWorker(index: number, hosts: WorkerHost[]): Worker {
  // The same loader as this process (tsx), so the worker runs from its TypeScript source.
  const child = fork(join(ROOT, "bench", "fleet-worker.ts"), { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const worker: Worker = {
    child,
    hosts,
    counts: { httpBeats: 0, channelBeats: 0, errors: {}, drops: {}, open: 0, dialed: 0, httpLatencies: [] },
    silenced: [],
    stopped: new Promise((resolve) => child.once("exit", () => resolve())),
  };
  child.on("message", (message: FromWorker) => {
    if (message.type === "stats") {
      const latencies = worker.counts.httpLatencies;
      latencies.push(...message.httpLatencies);
      worker.counts = { ...message, httpLatencies: latencies };
    } else if (message.type === "silenced") worker.silenced.push(...message.hosts);
  });
  child.on("exit", (code) => {
    if (code !== 0 && code !== null) fail(`simulator process ${index} exited with ${code}`);
  });
  return worker;
}

const tell = (worker: Worker, message: ToWorker) => worker.child.send(message);
const total = (workers: Worker[], field: "httpBeats" | "channelBeats" | "open" | "dialed") => workers.reduce((sum, w) => sum + w.counts[field], 0);
const merged = (workers: Worker[], field: "errors" | "drops") => {
  const all: Record<string, number> = {};
  for (const worker of workers) for (const [key, n] of Object.entries(worker.counts[field])) all[key] = (all[key] ?? 0) + n;
  return all;
};

function rssBytes(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) * 1024;
}

/** The JS heap in use, as the control plane's /metrics reports it. */
async function heapUsedBytes(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(/^muster_process_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
}

async function main() {
  const started = Date.now();
  const stores = await freshStores();
  const env = { MUSTER_HEARTBEAT_INTERVAL_S: String(INTERVAL_S), MUSTER_OFFLINE_AFTER_S: String(OFFLINE_AFTER_S) };
  const planes: Awaited<ReturnType<typeof startControlPlane>>[] = [];
  for (let i = 0; i < PLANES; i++) planes.push(await startControlPlane(`plane-${i}`, env, stores));
  const workerCount = Math.max(1, Math.ceil(HOSTS / WORKER_HOSTS));
  process.stdout.write(
    `Fleet simulator: ${HOSTS.toLocaleString("en")} hosts beating over ${channels ? "their channels (HTTP until open, and as fallback)" : "HTTP"}, ` +
      `${PLANES} control plane(s), ${workerCount} simulator process(es), interval ${INTERVAL_S} s, offline after ${OFFLINE_AFTER_S} s, ${DURATION_S} s of beats\n`,
  );

  const enrolling = progress("enrol  hosts   ", HOSTS);
  const enrolled = await enrollHosts(planes[0]!.url, stores.adminKey, HOSTS, 32, (done) => enrolling.update(done));
  enrolling.update(HOSTS, { detail: `in ${((Date.now() - started) / 1000).toFixed(0)} s` });
  enrolling.stop();

  const clusterNodes = process.env.REDIS_CLUSTER_NODES?.split(",");
  const cluster = clusterNodes ? await ClusterSpread.open(clusterNodes, stores.env.MUSTER_KV_PREFIX!) : null;
  await cluster?.mark();

  // Each simulator process reaches the planes at a loopback address of its own: one address and port pair has ~28,000 source ports.
  const slices: WorkerHost[][] = Array.from({ length: workerCount }, () => []);
  enrolled.forEach((host, i) => {
    const worker = i % workerCount;
    const plane = new URL(planes[i % PLANES]!.url);
    slices[worker]!.push({ id: host.id, token: host.token, url: `http://127.0.0.${1 + worker}:${plane.port}` });
  });
  const planeCpu = () => planes.reduce((sum, plane) => sum + cpuSeconds(plane.child.pid!), 0);
  // What the planes spend with no beat at all (sweeper, timers, the collector), taken off the lanes' figures below.
  const idleFrom = { cpu: planeCpu(), at: performance.now() };
  await sleep(IDLE_BASELINE_S * 1000);
  const idleCpuPerS = (planeCpu() - idleFrom.cpu) / ((performance.now() - idleFrom.at) / 1000);
  const workers = slices.map((hosts, i) => startWorker(i, hosts));
  for (const worker of workers) tell(worker, { type: "start", hosts: worker.hosts, intervalS: INTERVAL_S });

  /**
   * Control-plane CPU per beat in a window where one lane carries (nearly)
   * every beat: all of the planes' CPU in the window, less their idle rate,
   * over the beats.
   */
  async function cpuPerBeat(label: string, seconds: number, lane: "httpBeats" | "channelBeats") {
    const bar = progress(label, seconds);
    const cpu = planeCpu();
    const from = performance.now();
    const beats = total(workers, lane);
    for (let s = 1; s <= seconds; s++) {
      await sleep(1000);
      bar.update(s, { detail: `${(total(workers, "httpBeats") + total(workers, "channelBeats")).toLocaleString("en")} beats` });
    }
    bar.stop();
    const counted = total(workers, lane) - beats;
    const busy = planeCpu() - cpu - idleCpuPerS * ((performance.now() - from) / 1000);
    return { beats: counted, usPerBeat: counted > 0 ? (busy * 1e6) / counted : NaN };
  }

  // One interval for every host's first beat (which turns it online: a database write the steady state does not have).
  await cpuPerBeat("warm   seconds ", INTERVAL_S, "httpBeats");
  let httpLane: { beats: number; usPerBeat: number } | null = null;
  let memory: { rssBefore: number; rssAfter: number; heapBefore: number; heapAfter: number; open: number } | null = null;
  if (channels) {
    httpLane = await cpuPerBeat("http   seconds ", HTTP_S, "httpBeats");
    const rssBefore = planes.reduce((sum, plane) => sum + rssBytes(plane.child.pid!), 0);
    const heapBefore = (await Promise.all(planes.map((plane) => heapUsedBytes(plane.url)))).reduce((a, b) => a + b, 0);
    for (const worker of workers) tell(worker, { type: "dial", parallel: DIAL_PARALLEL });
    const dialing = progress("open   channels", HOSTS);
    while (total(workers, "dialed") < HOSTS) {
      await sleep(500);
      dialing.update(total(workers, "dialed"), { detail: `${total(workers, "open").toLocaleString("en")} open` });
    }
    dialing.update(HOSTS, { detail: `${total(workers, "open").toLocaleString("en")} open` });
    dialing.stop();
    // A few seconds for the last welcomes and the garbage of the handshakes.
    await sleep(5000);
    const rssAfter = planes.reduce((sum, plane) => sum + rssBytes(plane.child.pid!), 0);
    const heapAfter = (await Promise.all(planes.map((plane) => heapUsedBytes(plane.url)))).reduce((a, b) => a + b, 0);
    memory = { rssBefore, rssAfter, heapBefore, heapAfter, open: total(workers, "open") };
  }

  // Silence a share of the fleet a third of the way in; the rest beats on.
  const toSilence = new Set(
    Array.from({ length: HOSTS }, (_, i) => i)
      .sort(() => Math.random() - 0.5)
      .slice(0, Math.round(HOSTS * SILENCED_SHARE)),
  );
  const silencing = setTimeout(() => {
    workers.forEach((worker, w) =>
      tell(worker, { type: "silence", indices: worker.hosts.map((_, local) => local).filter((local) => toSilence.has(local * workerCount + w)) }),
    );
  }, (DURATION_S * 1000) / 3);
  const lane = await cpuPerBeat("beat   seconds ", DURATION_S, channels ? "channelBeats" : "httpBeats");
  clearTimeout(silencing);
  const spread = (await cluster?.report()) ?? [];

  // Give the sweeper the rest of the silenced hosts' window, plus its 2 s promise.
  const silenced = workers.flatMap((worker) => worker.silenced);
  const lastDeadline = Math.max(...silenced.map((h) => h.lastBeatAt + OFFLINE_AFTER_S * 1000), Date.now());
  const settle = progress("settle seconds ", Math.max(1, Math.ceil((lastDeadline + 3000 - Date.now()) / 1000)));
  while (Date.now() < lastDeadline + 3000) {
    settle.increment();
    await sleep(1000);
  }
  settle.stop();
  for (const worker of workers) tell(worker, { type: "stop" });
  await Promise.all(workers.map((worker) => worker.stopped));

  const operator = new Transport({ baseUrl: planes[0]!.url, authHeaders: () => ({ authorization: `Bearer ${stores.adminKey}` }) });
  const offlineAt = new Map<string, number>();
  for (let cursor: string | undefined; ; ) {
    const page = await operator.call(routes.listAudit, { query: { action: "host.offline", limit: 500, ...(cursor ? { cursor } : {}) } });
    for (const entry of page.items) offlineAt.set(entry.target_id, Date.parse(entry.created_at));
    if (page.next_cursor === null) break;
    cursor = page.next_cursor;
  }
  const silencedIds = new Set(silenced.map((h) => h.id));
  const falseOffline = enrolled.filter((h) => !silencedIds.has(h.id) && offlineAt.has(h.id)).length;
  const missed = silenced.filter((h) => !offlineAt.has(h.id)).length;
  const lags = silenced.filter((h) => offlineAt.has(h.id)).map((h) => offlineAt.get(h.id)! - (h.lastBeatAt + OFFLINE_AFTER_S * 1000));
  const latencies = workers.flatMap((worker) => worker.counts.httpLatencies).sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(1) : "-");
  const httpBeats = total(workers, "httpBeats");
  const channelBeats = total(workers, "channelBeats");
  const beatSeconds = (Date.now() - started) / 1000;
  const errors = merged(workers, "errors");
  const drops = merged(workers, "drops");
  const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
  const listed = (bucket: Record<string, number>) => (Object.keys(bucket).length ? ` (${Object.entries(bucket).map(([k, n]) => `${k}: ${n}`).join(", ")})` : "");
  const kib = (bytes: number, count: number) => (bytes / Math.max(1, count) / 1024).toFixed(1);
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

  const lines: [string, string][] = [
    ["heartbeats accepted", `${(httpBeats + channelBeats).toLocaleString("en")}: ${channelBeats.toLocaleString("en")} over channels, ${httpBeats.toLocaleString("en")} over HTTP`],
    [`  ${channels ? "channel" : "HTTP"} lane, steady`, `${(lane.beats / DURATION_S).toFixed(0)}/s`],
    ["HTTP latency p50 / p99", `${pct(0.5)} / ${pct(0.99)} ms`],
    ["errors", `${errorCount}${listed(errors)}`],
    ...(channels ? ([["channels dropped", `${Object.values(drops).reduce((a, b) => a + b, 0)}${listed(drops)}`]] as [string, string][]) : []),
    [
      "control-plane CPU per beat",
      httpLane
        ? `${lane.usPerBeat.toFixed(1)} µs over a channel, ${httpLane.usPerBeat.toFixed(1)} µs over the HTTP lane (${(lane.usPerBeat / httpLane.usPerBeat).toFixed(2)}×)`
        : `${lane.usPerBeat.toFixed(1)} µs over the HTTP lane`,
    ],
    ["  control planes idle", `${(idleCpuPerS * 1000).toFixed(0)} ms CPU a second, taken off the figures above`],
    ...(memory
      ? ([
          ["channels open", `${memory.open.toLocaleString("en")} of ${HOSTS.toLocaleString("en")}`],
          [
            "memory per connected host",
            `${kib(memory.rssAfter - memory.rssBefore, memory.open)} KiB resident, ${kib(memory.heapAfter - memory.heapBefore, memory.open)} KiB of JS heap ` +
              `(control planes ${mib(memory.rssBefore)} → ${mib(memory.rssAfter)})`,
          ],
        ] as [string, string][])
      : []),
    ["hosts silenced on purpose", String(silenced.length)],
    ["  marked offline", `${silenced.length - missed} (missed: ${missed})`],
    ["  lag after deadline p50 / max", lags.length ? `${median(lags)} / ${Math.max(...lags)} ms` : "-"],
    ["false offline transitions", String(falseOffline)],
    ["whole run", `${beatSeconds.toFixed(0)} s`],
  ];
  process.stdout.write("\n" + lines.map(([k, v]) => `  ${k.padEnd(32)} ${v}`).join("\n") + "\n");
  if (spread.length > 0) process.stdout.write(`\n${spread.join("\n")}\n`);
  await cluster?.close();

  for (const plane of planes) await plane.stop();
  await stores.dispose();
  if (falseOffline > 0 || missed > 0 || errorCount > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
