import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
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
  const fresh = () => existsSync(wanted) && statSync(wanted).mtimeMs >= Math.max(...sources.map(newest));
  if (fresh()) return wanted;
  const release = lock(join(app, "node_modules", `.${options.name}-building`));
  try {
    if (fresh()) return wanted;
    const bin = join(app, "node_modules", ".bin");
    execFileSync(join(bin, "tsup"), [], { cwd: app, stdio: "pipe", timeout: 60_000 });
    const args = [join(REPO, "scripts", "build-sea.ts"), options.name, ...(options.arm64 ? ["--arm64"] : [])];
    execFileSync(join(bin, "tsx"), args, { cwd: app, stdio: "pipe", timeout: 300_000 });
    return wanted;
  } finally {
    release();
  }
}

const LOCK_STALE_MS = 5 * 60_000;

/**
 * Held while building (outside dist/, which the build empties): test files run
 * in parallel, and two builds into one dist/ would spoil each other.
 */
function lock(path: string): () => void {
  for (;;) {
    try {
      mkdirSync(path);
      return () => rmSync(path, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const heldSince = statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - heldSince > LOCK_STALE_MS) rmSync(path, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
}
