import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SERVICES_SH = fileURLToPath(new URL("../../../../scripts/services.sh", import.meta.url));

/** Runs scripts/services.sh with the given ports; what it prints on stdout. */
export function services(args: string[], ports: Record<string, number> = {}): string {
  return execFileSync("bash", [SERVICES_SH, ...args], {
    env: { ...process.env, ...Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, String(port)])) },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
}

/** Starts a redis-server on `port` with its files in `dir` (again, after killRedisServer). */
export function startRedisServer(dir: string, port: number): void {
  services(["start-redis", dir], { REDIS_PORT: port });
}

/** SIGKILL to the redis-server started in `dir` (or to a cluster node's, by its pid file); returns once it has exited. */
export async function killRedisServer(pidFile: string): Promise<void> {
  const pid = Number(readFileSync(pidFile, "utf8"));
  process.kill(pid, "SIGKILL");
  for (const until = Date.now() + 10_000; existsSync(`/proc/${pid}`); ) {
    if (Date.now() > until) throw new Error(`redis-server ${pid} did not exit after SIGKILL`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const redisPidFile = (dir: string) => join(dir, "redis.pid");
