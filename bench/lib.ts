import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { routes } from "@muster/contract";
import { Transport } from "@muster/sdk";
import { freePort, throwawayDatabase } from "@muster/testkit";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CONTROL_PLANE = join(ROOT, "apps/control-plane/dist/main.js");
const CLOCK_TICKS_PER_S = 100;

/** Servers still running: an interrupted benchmark (Ctrl-C) stops them rather than leaving them behind. */
const running = new Set<ChildProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill("SIGTERM");
    process.exit(130);
  });
}

export interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Waits for `ready` on stdout (bench servers) or for /readyz (the control plane). */
async function waitReady(child: ChildProcess, url: string, probe: "stdout" | "readyz", log: () => string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited:\n${log()}`);
    if (probe === "stdout" ? log().includes("ready") : await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return;
    if (Date.now() > until) throw new Error(`server not ready after 60 s:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startServer(
  name: string,
  args: string[],
  env: Record<string, string>,
  probe: "stdout" | "readyz",
  cleanup: () => Promise<void> = async () => {},
): Promise<Server> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  // BENCH_CPU_PROF=DIR: each server writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...profile, ...args], {
    env: { ...(process.env as Record<string, string>), PORT: String(port), LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let log = "";
  child.stdout!.on("data", (chunk) => (log += chunk));
  child.stderr!.on("data", (chunk) => (log += chunk));
  const url = `http://127.0.0.1:${port}`;
  await waitReady(child, url, probe, () => log);
  return {
    name,
    url,
    child,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      await cleanup();
    },
  };
}

/**
 * A built control plane on the stores the environment names (embedded by
 * default), with a known admin key. A benchmark enrols its whole fleet from
 * one address, so the per-address registration limit (600 a minute) is off.
 */
export async function startControlPlane(name: string, env: Record<string, string> = {}, shared?: SharedStores) {
  if (!existsSync(CONTROL_PLANE)) throw new Error("build first: pnpm build (the benchmark runs apps/control-plane/dist)");
  const stores = shared ?? (await freshStores());
  const server = await startServer(
    name,
    [CONTROL_PLANE],
    { ...stores.env, MUSTER_ADMIN_KEY: stores.adminKey, MUSTER_RATE_LIMIT_PER_ADDRESS: "0", ...env },
    "readyz",
    shared ? async () => {} : stores.dispose,
  );
  return { ...server, adminKey: stores.adminKey, stores };
}

export interface SharedStores {
  env: Record<string, string>;
  adminKey: string;
  dispose(): Promise<void>;
}

/**
 * A fresh database (and Redis key space) when DATABASE_URL and REDIS_URL or
 * REDIS_CLUSTER_NODES are set, else a temporary data folder; `embedded` asks
 * for the folder whatever is set.
 */
export async function freshStores(options: { embedded?: boolean } = {}): Promise<SharedStores> {
  const unique = randomBytes(6).toString("hex");
  const adminKey = `bench-admin-${randomBytes(24).toString("hex")}`;
  const dataDir = mkdtempSync(join(tmpdir(), "muster-bench-"));
  const env: Record<string, string> = { MUSTER_DATA_DIR: dataDir, MUSTER_KV_PREFIX: `bench-${unique}:` };
  const postgres = process.env.DATABASE_URL && !options.embedded ? process.env.DATABASE_URL : null;
  const database = postgres ? await throwawayDatabase(postgres, "muster_bench") : null;
  if (database) {
    env.DATABASE_URL = database.url;
    env.MUSTER_SECRET_KEY = randomBytes(32).toString("base64");
  } else {
    // An empty variable counts as unset: the control plane must not pick up this shell's stores.
    Object.assign(env, { DATABASE_URL: "", REDIS_URL: "", REDIS_CLUSTER_NODES: "" });
  }
  return {
    env,
    adminKey,
    async dispose() {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface EnrolledHost {
  id: string;
  token: string;
  refreshToken: string;
}

/** Creates and registers `count` hosts through the real API, `parallel` at a time, reporting progress. */
export async function enrollHosts(
  url: string,
  adminKey: string,
  count: number,
  parallel: number,
  onProgress: (done: number) => void = () => {},
): Promise<EnrolledHost[]> {
  const operator = new Transport({ baseUrl: url, authHeaders: () => ({ authorization: `Bearer ${adminKey}` }), timeoutMs: 60_000 });
  const anonymous = new Transport({ baseUrl: url, timeoutMs: 60_000 });
  const hosts: EnrolledHost[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const created = await operator.call(routes.createHost, { body: { type: "regular", tags: ["bench"] } });
      const creds = await anonymous.call(routes.registerHost, {
        body: {
          token: created.registration_token,
          address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7070`,
          arch: "amd64",
          cpu_cores: 8,
          memory_mb: 16384,
          disk_gb: 100,
          hostname: `sim-${i}`,
        },
      });
      hosts.push({ id: creds.host.id, token: creds.token, refreshToken: creds.refresh_token });
      onProgress(hosts.length);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return hosts;
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number, withReapedChildren = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]) + (withReapedChildren ? Number(fields[13]) + Number(fields[14]) : 0);
  return ticks / CLOCK_TICKS_PER_S;
}

/**
 * CPU seconds used by the PostgreSQL server that DATABASE_URL names: its
 * postmaster, the backends it has reaped and those still running. Other
 * PostgreSQL servers on the machine are not counted; 0 on the embedded default.
 */
export function postgresCpuSeconds(): number {
  const port = process.env.DATABASE_URL ? new URL(process.env.DATABASE_URL).port || "5432" : null;
  if (port === null) return 0;
  const processes: { pid: number; ppid: number; args: string[] }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue;
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      processes.push({ pid: Number(entry), ppid, args: readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0") });
    } catch {
      // The process ended while we looked.
    }
  }
  const postmaster = processes.find(({ args }) => args.some((arg, i) => arg === "-p" && args[i + 1] === port));
  if (!postmaster) return 0;
  let total = cpuSeconds(postmaster.pid, true);
  for (const child of processes) {
    if (child.ppid !== postmaster.pid) continue;
    try {
      total += cpuSeconds(child.pid);
    } catch {
      // Reaped meanwhile: its time is in the postmaster's children's figure from now on.
    }
  }
  return total;
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
