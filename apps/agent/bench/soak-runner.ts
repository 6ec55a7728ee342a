import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MusterClient } from "@muster/sdk";
import WebSocket from "ws";
import { startControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../scripts/ensure-built.js";
import { dropFromPageCache } from "../scripts/page-cache.js";

/**
 * The real `muster-agent` executable against a real control plane, the way a
 * host runs it for days, compressed: heartbeats every second over the channel,
 * a `ping` command every few seconds, the credentials refreshed every couple
 * of minutes (short host tokens) and on command. Its memory is read from /proc
 * (resident set, split into anonymous and file-backed pages) and its JS heap
 * from the pings' answers. `pnpm bench:agent-soak` and the memory test both
 * run this.
 */
export interface SoakOptions {
  seconds: number;
  /** A sample every this many seconds. */
  sampleEveryS: number;
  /** A `ping` command every this many seconds. */
  commandEveryS: number;
  /** The host token's lifetime: the agent refreshes at 80 % of it (the control plane's minimum is 60 s). */
  hostTokenTtlS: number;
  /** Also ask for a refresh with a `refresh_credentials` command at these seconds after the start. */
  refreshCommandsAtS?: number[];
  /**
   * Also read what the agent retains: at every sample, after reading its memory
   * as it is, a full collection through Node's inspector (opened with SIGUSR1,
   * as on any Node process, on 127.0.0.1:9229), then the live heap and the
   * resident memory again. A leak shows there; garbage waiting for V8's next
   * full collection, which a heap this small reaches only after hours, does not.
   */
  collectGarbage?: boolean;
  onSample?: (sample: Sample) => void;
}

export interface Sample {
  /** Seconds since the agent was started. */
  atS: number;
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  /**
   * JS heap in use, the lowest the pings since the previous sample reported:
   * the heap as collections leave it, not the garbage waiting for the next.
   */
  heapMiB: number | null;
  /** CPU seconds the agent used so far. */
  cpuS: number;
  /** With `collectGarbage`: the JS heap still in use right after a full collection. */
  liveHeapMiB: number | null;
  /** With `collectGarbage`: resident memory right after that collection. */
  rssAfterGcMiB: number | null;
}

export interface SoakResult {
  samples: Sample[];
  pings: number;
  /** Credential refreshes the agent logged, on its own schedule and on command. */
  refreshes: number;
  failedCommands: number;
  /** The agent's exit status after SIGTERM. */
  exitCode: number | null;
}

const CLOCK_TICKS_PER_S = 100;
const MIB = 2 ** 20;

function readSample(pid: number, atS: number, heapMiB: number | null): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    atS,
    rssMiB: kib("VmRSS") / 1024,
    anonMiB: kib("RssAnon") / 1024,
    fileMiB: (kib("RssFile") + kib("RssShmem")) / 1024,
    heapMiB,
    cpuS: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S,
    liveHeapMiB: null,
    rssAfterGcMiB: null,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const work = mkdtempSync(join(tmpdir(), "muster-agent-soak-"));
  const binary = join(work, "muster-agent");
  copyFileSync(ensureBuilt(), binary);
  // As on a host after install.sh or a reboot: the executable's code is read in as it runs, not left in the page cache by the copy.
  dropFromPageCache(binary);
  const cp = await startControlPlane({
    MUSTER_HEARTBEAT_INTERVAL_S: "1",
    MUSTER_OFFLINE_AFTER_S: "3",
    MUSTER_HOST_TOKEN_TTL_S: String(options.hostTokenTtlS),
  });
  const admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
  let child: ChildProcess | null = null;
  let inspector: Inspector | null = null;
  try {
    const { host, registration_token } = await admin.hosts.create({ type: "regular" });
    // Registered by a first run, as install.sh does; the measured run starts from the saved credentials, as a host does at every boot.
    await registerOnce(binary, work, cp.url, registration_token);
    const started = performance.now();
    const agent = spawn(
      binary,
      ["--control-plane", cp.url, "--credentials-file", join(work, "credentials.json"), "--listen", "127.0.0.1:0", "--log-format", "json"],
      { cwd: work, env: {}, stdio: ["ignore", "pipe", "pipe"] },
    );
    child = agent;
    let log = "";
    agent.stdout!.on("data", (chunk: Buffer) => (log += chunk));
    agent.stderr!.on("data", (chunk: Buffer) => (log += chunk));
    const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
    await waitFor(() => log.includes("agent channel open"), 30_000, () => `the agent's channel did not open:\n${log}`);
    if (options.collectGarbage) inspector = await openInspector(agent, () => log);

    const samples: Sample[] = [];
    let heapMiB: number | null = null;
    let pings = 0;
    let failedCommands = 0;
    const refreshAt = [...(options.refreshCommandsAtS ?? [])];
    const end = started + options.seconds * 1000;
    let nextSample = started + options.sampleEveryS * 1000;
    let nextCommand = performance.now();
    while (performance.now() < end) {
      if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode}) during the soak:\n${log}`);
      const now = performance.now();
      if (now >= nextCommand) {
        nextCommand += options.commandEveryS * 1000;
        const refresh = refreshAt.length > 0 && now - started >= refreshAt[0]! * 1000;
        if (refresh) refreshAt.shift();
        const done = await admin.hosts.commands.run(host.id, { type: refresh ? "refresh_credentials" : "ping", timeout_s: 30 });
        if (done.status !== "succeeded") failedCommands++;
        else if (!refresh) {
          pings++;
          const memory = (done.result as { memory?: { heap_used_bytes?: number } } | null)?.memory;
          if (typeof memory?.heap_used_bytes === "number") heapMiB = Math.min(heapMiB ?? Infinity, memory.heap_used_bytes / MIB);
        }
      }
      if (performance.now() >= nextSample) {
        const sample = readSample(agent.pid!, (performance.now() - started) / 1000, heapMiB);
        if (inspector) {
          await inspector.call("HeapProfiler.collectGarbage");
          const usage = (await inspector.call("Runtime.getHeapUsage")) as { usedSize: number };
          sample.liveHeapMiB = usage.usedSize / MIB;
          sample.rssAfterGcMiB = readSample(agent.pid!, sample.atS, null).rssMiB;
        }
        samples.push(sample);
        heapMiB = null;
        options.onSample?.(sample);
        nextSample += options.sampleEveryS * 1000;
      }
      await sleep(Math.max(0, Math.min(nextSample, nextCommand) - performance.now()));
    }
    // A process with a debugger attached waits for it to leave before it exits.
    await inspector?.close();
    agent.kill("SIGTERM");
    const exitCode = await Promise.race([exited, sleep(5_000).then(() => null)]);
    const refreshes = log.split('"msg":"credentials refreshed"').length - 1;
    return { samples, pings, refreshes, failedCommands, exitCode };
  } finally {
    await inspector?.close();
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await cp.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

interface Inspector {
  call(method: string): Promise<unknown>;
  close(): Promise<void>;
}

/** Node's inspector in the agent, opened as any Node process opens it on SIGUSR1, driven over the DevTools protocol. */
async function openInspector(agent: ChildProcess, log: () => string): Promise<Inspector> {
  const address = /Debugger listening on (ws:\/\/\S+)/;
  agent.kill("SIGUSR1");
  await waitFor(() => address.test(log()) || log().includes("Starting inspector"), 10_000, () => `the agent's inspector did not open:\n${log()}`);
  const url = address.exec(log())?.[1];
  if (!url) throw new Error(`the agent's inspector did not open (is 127.0.0.1:9229 taken?):\n${log()}`);
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  const waiting = new Map<number, (result: unknown) => void>();
  let lastId = 0;
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
    waiting.delete(message.id ?? -1);
  });
  return {
    call: (method) =>
      new Promise((resolve) => {
        const id = ++lastId;
        waiting.set(id, resolve);
        socket.send(JSON.stringify({ id, method }));
      }),
    close: () =>
      new Promise((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once("close", () => resolve());
        socket.close();
      }),
  };
}

async function registerOnce(binary: string, cwd: string, url: string, token: string): Promise<void> {
  const child = spawn(
    binary,
    ["--control-plane", url, "--credentials-file", join(cwd, "credentials.json"), "--register", token, "--address", "127.0.0.1:7070", "--register-only"],
    { cwd, env: {}, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`registration failed (${code}):\n${output}`);
}

async function waitFor(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > until) throw new Error(message());
    await sleep(50);
  }
}

/** Least-squares slope of `value` over time, in units per hour. */
export function slopePerHour(samples: Sample[], value: (sample: Sample) => number | null): number | null {
  const points = samples.flatMap((sample) => {
    const y = value(sample);
    return y === null ? [] : [{ x: sample.atS / 3600, y }];
  });
  if (points.length < 2) return null;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / points.length;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / points.length;
  const covariance = points.reduce((sum, p) => sum + (p.x - meanX) * (p.y - meanY), 0);
  const variance = points.reduce((sum, p) => sum + (p.x - meanX) ** 2, 0);
  return variance === 0 ? null : covariance / variance;
}
