import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
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

/** Builds dist/muster-agent the way `pnpm build` does, when it is missing or older than its sources. Returns its path. */
export function ensureBuilt(): string {
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs >= Math.max(...SOURCES.map(newest))) return BUILT;
  const bin = join(AGENT, "node_modules", ".bin");
  execFileSync(join(bin, "tsup"), [], { cwd: AGENT, stdio: "pipe", timeout: 60_000 });
  execFileSync(join(bin, "tsx"), ["scripts/build-sea.ts"], { cwd: AGENT, stdio: "pipe", timeout: 120_000 });
  return BUILT;
}
