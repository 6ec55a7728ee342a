import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const AGENT = fileURLToPath(new URL("..", import.meta.url));
const REPO = join(AGENT, "..", "..");
export const BUILT = join(AGENT, "dist", "muster-agent");

/** What the executable is made of: if any of it is newer than the executable, it is rebuilt. */
const SOURCES = [
  join(AGENT, "src"),
  join(AGENT, "scripts"),
  join(AGENT, "package.json"),
  join(AGENT, "tsup.config.ts"),
  join(AGENT, "sea-config.json"),
  join(REPO, "packages", "sdk", "src"),
  join(REPO, "packages", "contract", "src"),
];

function newest(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const fresh = () => existsSync(BUILT) && statSync(BUILT).mtimeMs >= Math.max(...SOURCES.map(newest));

/** Held while building (outside dist/, which the build empties): test files run in parallel, and two builds into one dist/ would spoil each other. */
const LOCK = join(AGENT, "node_modules", ".muster-agent-building");
const LOCK_STALE_MS = 5 * 60_000;

function lock(): void {
  for (;;) {
    try {
      mkdirSync(LOCK);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (Date.now() - statSync(LOCK).mtimeMs > LOCK_STALE_MS) rmSync(LOCK, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
}

/** Builds dist/muster-agent the way `pnpm build` does, when it is missing or older than its sources. Returns its path. */
export function ensureBuilt(): string {
  if (fresh()) return BUILT;
  lock();
  try {
    if (fresh()) return BUILT;
    const bin = join(AGENT, "node_modules", ".bin");
    execFileSync(join(bin, "tsup"), [], { cwd: AGENT, stdio: "pipe", timeout: 60_000 });
    execFileSync(join(bin, "tsx"), ["scripts/build-sea.ts"], { cwd: AGENT, stdio: "pipe", timeout: 120_000 });
    return BUILT;
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
