import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Presets, SingleBar } from "cli-progress";
import type { FromWorker, ToWorker, WorkerHost } from "./fleet-worker.js";
import { freePort } from "@muster/testkit";
import { enrollHosts, freshStores, ROOT, startControlPlane, type SharedStores } from "./lib.js";

/**
 * `pnpm bench:memory`: the control plane's resident memory as an operator
 * sees it, on the embedded default and, when DATABASE_URL and REDIS_URL are
 * set, on PostgreSQL + Redis beside it. For each: right after the first start
 * (idle, no hosts), then with MEMORY_HOSTS (1,000) hosts beating over their
 * channels (as muster-agent does, every MEMORY_INTERVAL_S, 10 s) for
 * MEMORY_BEAT_S (60 s), then again after a restart on the same data with the
 * same hosts beating on (they redial, as agents do).
 */
const HOSTS = Number(process.env.MEMORY_HOSTS ?? 1000);
const INTERVAL_S = Number(process.env.MEMORY_INTERVAL_S ?? 10);
const BEAT_S = Number(process.env.MEMORY_BEAT_S ?? 60);
const IDLE_S = 10;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) / 1024;
  return { rss: mib("VmRSS"), peak: mib("VmHWM") };
}

async function wait(label: string, seconds: number): Promise<void> {
  const bar = new SingleBar({ format: ` ${label} |{bar}| {value}/{total} s`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, Presets.shades_classic);
  bar.start(seconds, 0);
  for (let s = 1; s <= seconds; s++) {
    await sleep(1000);
    bar.update(s);
  }
  bar.stop();
}

interface Figures {
  firstStart: { rss: number; peak: number };
  beating: { rss: number; peak: number };
  restarted: { rss: number; peak: number };
  /** Channels open at the end of each phase with hosts. */
  open: [number, number];
}

async function measure(mode: string, stores: SharedStores): Promise<Figures> {
  process.stdout.write(`\n${mode}\n`);
  const env = { MUSTER_HEARTBEAT_INTERVAL_S: String(INTERVAL_S), MUSTER_OFFLINE_AFTER_S: String(3 * INTERVAL_S), PORT: String(await freePort()) };
  let plane = await startControlPlane("memory", env, stores);
  await wait("idle after the first start ", IDLE_S);
  const firstStart = memory(plane.child.pid!);

  const enrolled = await enrollHosts(plane.url, stores.adminKey, HOSTS, 16);
  const worker = fork(join(ROOT, "bench", "fleet-worker.ts"), { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let open = 0;
  worker.on("message", (message: FromWorker) => {
    if (message.type === "stats") open = message.open;
  });
  const tell = (message: ToWorker) => worker.send(message);
  const hosts: WorkerHost[] = enrolled.map((host) => ({ id: host.id, token: host.token, url: plane.url }));
  tell({ type: "start", hosts, intervalS: INTERVAL_S });
  tell({ type: "dial", parallel: 50 });
  await wait(`${HOSTS.toLocaleString("en")} hosts beating          `, BEAT_S);
  const beating = memory(plane.child.pid!);
  const openBefore = open;

  await plane.stop();
  plane = await startControlPlane("memory", env, stores);
  await wait("beating on after a restart  ", BEAT_S);
  const restarted = memory(plane.child.pid!);

  const openAfter = open;
  const stopped = new Promise((resolve) => worker.once("exit", resolve));
  tell({ type: "stop" });
  await stopped;
  await plane.stop();
  await stores.dispose();
  return { firstStart, beating, restarted, open: [openBefore, openAfter] };
}

const results: [string, Figures][] = [["embedded (PGlite + in-process KV)", await measure("embedded (PGlite + in-process KV)", await freshStores({ embedded: true }))]];
if (process.env.DATABASE_URL && process.env.REDIS_URL) {
  results.push(["PostgreSQL + Redis", await measure("PostgreSQL + Redis", await freshStores())]);
}

const cell = (figure: { rss: number; peak: number }) => `${figure.rss.toFixed(0)} MiB (peak ${figure.peak.toFixed(0)})`.padEnd(22);
process.stdout.write(`\nControl-plane resident memory (VmRSS; peak: VmHWM), ${HOSTS.toLocaleString("en")} hosts beating every ${INTERVAL_S} s over their channels\n`);
process.stdout.write(`  ${"".padEnd(36)}${"first start, idle".padEnd(22)}${"+ hosts beating".padEnd(22)}${"after a restart".padEnd(22)}\n`);
for (const [mode, figures] of results) {
  process.stdout.write(`  ${mode.padEnd(36)}${cell(figures.firstStart)}${cell(figures.beating)}${cell(figures.restarted)}  (channels open: ${figures.open.join(", ")})\n`);
}
