import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * The control plane as an operator starts it: `main.ts` in its own process,
 * configured by the environment alone (none of the suite's DATABASE_URL,
 * REDIS_URL, REDIS_CLUSTER_NODES or MUSTER_* leaks in unless given).
 */
const APP_DIR = fileURLToPath(new URL("../..", import.meta.url));

export interface MainProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];

/** Kills whatever is still running (afterAll). */
export function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

export function startMain(env: Record<string, string>): MainProcess {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(DATABASE_URL|REDIS_URL|REDIS_CLUSTER_NODES|MUSTER_)/.test(name)));
  // tsx as a loader, not its CLI: the child is the control plane itself (its PID, its umask, its signals).
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { cwd: APP_DIR, env: { ...clean, LOG_LEVEL: "info", ...env }, stdio: "pipe" });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

export async function waitForOutput(started: MainProcess, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pattern.test(started.output())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${pattern}; output:\n${started.output()}`);
    if (started.child.exitCode !== null) throw new Error(`process exited early; output:\n${started.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function stopMain(started: MainProcess): Promise<number | null> {
  started.child.kill("SIGTERM");
  return started.exited;
}
