import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));

function newest(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

/**
 * For tests and benchmarks of a single executable: builds it the way
 * `pnpm build` does (the app's tsup bundle, then scripts/build-sea.ts) when it
 * is missing or older than anything it is made of. Returns its path.
 */
export function ensureBuilt(options: { app: string; name: string; arm64?: boolean }): string {
  const app = join(REPO, "apps", options.app);
  const wanted = join(app, "dist", options.arm64 ? `${options.name}-linux-arm64` : options.name);
  const sources = [
    join(app, "src"),
    join(app, "package.json"),
    join(app, "tsup.config.ts"),
    join(REPO, "scripts", "build-sea.ts"),
    join(REPO, "packages", "sdk", "src"),
    join(REPO, "packages", "contract", "src"),
  ];
  if (existsSync(wanted) && statSync(wanted).mtimeMs >= Math.max(...sources.map(newest))) return wanted;
  const bin = join(app, "node_modules", ".bin");
  execFileSync(join(bin, "tsup"), [], { cwd: app, stdio: "pipe", timeout: 60_000 });
  const args = [join(REPO, "scripts", "build-sea.ts"), options.name, ...(options.arm64 ? ["--arm64"] : [])];
  execFileSync(join(bin, "tsx"), args, { cwd: app, stdio: "pipe", timeout: 300_000 });
  return wanted;
}
