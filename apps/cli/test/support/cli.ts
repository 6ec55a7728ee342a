import { spawn } from "node:child_process";
import { inject } from "vitest";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI's environment: nothing of the developer's MUSTER_* leaks in, only what a test gives. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
}

const LIMIT_MS = 60_000;

/** A running `muster` process whose output can be awaited while it runs (for --wait). */
export function startCli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [inject("cliBin"), ...args], { env: environment(env), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((listener) => listener());
  child.stdout.on("data", (chunk) => ((stdout += chunk), changed()));
  child.stderr.on("data", (chunk) => ((stderr += chunk), changed()));
  const killer = setTimeout(() => child.kill("SIGKILL"), LIMIT_MS);
  const exited = new Promise<CliResult>((resolve) =>
    child.once("close", (code) => (clearTimeout(killer), resolve({ code, stdout, stderr }))),
  );

  return {
    child,
    exited,
    /** Resolves once stdout matches, or rejects if the process ends or 20 s pass first. */
    async stdoutMatching(pattern: RegExp): Promise<RegExpMatchArray> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = stdout.match(pattern);
          if (match) return finish(() => resolve(match));
          if (child.exitCode !== null) finish(() => reject(new Error(`muster exited before printing ${pattern}:\n${stdout}\n${stderr}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} within 20 s:\n${stdout}\n${stderr}`))), 20_000);
        const finish = (settle: () => void) => (clearTimeout(timer), listeners.delete(check), settle());
        listeners.add(check);
        void exited.then(check);
        check();
      });
    },
  };
}

/** Runs `muster <args>` to the end. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).exited;
}

/** The environment that points the CLI at a control plane with a key. */
export const as = (url: string, apiKey: string) => ({ MUSTER_URL: url, MUSTER_API_KEY: apiKey });
