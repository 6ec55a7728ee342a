/**
 * The agent's figures, for the README: the executable's size, the time from
 * start to the first heartbeat the control plane accepted (registering first,
 * and restarting from saved credentials), resident memory after a minute of
 * heartbeating, and how long SIGTERM takes. Not a test: it prints, it does not
 * judge.
 *
 *   pnpm --filter @muster/agent bench          (BENCH_SECONDS=60, BENCH_INTERVAL_S=1 by default)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { startControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../scripts/ensure-built.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const INTERVAL_S = process.env.BENCH_INTERVAL_S ?? "1";
const WARM_RUNS = 5;

const say = (line: string) => process.stdout.write(`${line}\n`);

interface Running {
  child: ChildProcess;
  spawnedAt: number;
  firstBeat: Promise<number>;
  exited: Promise<number>;
}

function run(binary: string, cwd: string, args: string[]): Running {
  const spawnedAt = performance.now();
  const child = spawn(binary, args, { cwd, env: { PATH: "/nonexistent" }, stdio: ["ignore", "pipe", "inherit"] });
  let buffered = "";
  const firstBeat = new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk;
      if (buffered.includes('"msg":"first heartbeat accepted"')) resolve(performance.now() - spawnedAt);
    });
    child.on("exit", (code) => reject(new Error(`agent exited (${code}) before its first heartbeat:\n${buffered}`)));
  });
  firstBeat.catch(() => {});
  const exited = new Promise<number>((resolve) => child.on("exit", () => resolve(performance.now())));
  return { child, spawnedAt, firstBeat, exited };
}

async function stop(agent: Running): Promise<number> {
  const sentAt = performance.now();
  agent.child.kill("SIGTERM");
  return (await agent.exited) - sentAt;
}

function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const ms = (value: number) => `${value.toFixed(0)} ms`;
const mib = (value: number) => `${value.toFixed(1)} MiB`;

const built = ensureBuilt();
const work = mkdtempSync(join(tmpdir(), "muster-agent-bench-"));
const binary = join(work, "muster-agent");
copyFileSync(built, binary);
const cp = await startControlPlane({ MUSTER_HEARTBEAT_INTERVAL_S: INTERVAL_S, MUSTER_OFFLINE_AFTER_S: String(Number(INTERVAL_S) * 3) });
try {
  const created = await fetch(`${cp.url}/v1/hosts`, {
    method: "POST",
    headers: { authorization: `Bearer ${cp.adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ type: "regular" }),
  }).then((response) => response.json() as Promise<{ registration_token: string }>);
  const credentials = join(work, "credentials.json");
  const common = ["--control-plane", cp.url, "--credentials-file", credentials, "--log-format", "json"];

  const cold = run(binary, work, [...common, "--register", created.registration_token, "--address", "10.0.0.7:7070"]);
  const coldMs = await cold.firstBeat;
  await stop(cold);

  const warm: number[] = [];
  const stops: number[] = [];
  for (let i = 0; i < WARM_RUNS; i++) {
    const agent = run(binary, work, common);
    warm.push(await agent.firstBeat);
    stops.push(await stop(agent));
  }

  const long = run(binary, work, common);
  await long.firstBeat;
  const atStart = memory(long.child.pid!);
  say(`heartbeating for ${SECONDS} s at a ${INTERVAL_S} s interval…`);
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const after = memory(long.child.pid!);
  const stopMs = await stop(long);

  const size = statSync(built).size;
  const rows: Array<[string, string]> = [
    ["executable size", `${mib(size / 2 ** 20)} (${size} bytes)`],
    ["bundle size (dist/muster-agent.cjs)", `${(statSync(join(built, "..", "muster-agent.cjs")).size / 1024).toFixed(0)} KiB`],
    ["start → first accepted heartbeat, registering first", ms(coldMs)],
    [`start → first accepted heartbeat, saved credentials (median of ${WARM_RUNS})`, `${ms(median(warm))} (min ${ms(Math.min(...warm))}, max ${ms(Math.max(...warm))})`],
    ["resident memory after the first heartbeat", mib(atStart.rssMiB)],
    [`resident memory after ${SECONDS} s of heartbeats every ${INTERVAL_S} s`, `${mib(after.rssMiB)} (peak ${mib(after.peakMiB)})`],
    ["SIGTERM → exit", `${ms(stopMs)} (right after the first heartbeat: median ${ms(median(stops))})`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  say("");
  say(`muster-agent benchmark: ${process.platform}-${process.arch}, node ${process.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}`);
  for (const [label, value] of rows) say(`  ${label.padEnd(width)}  ${value}`);
} finally {
  await cp.stop();
  rmSync(work, { recursive: true, force: true });
}
