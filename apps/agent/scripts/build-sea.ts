/**
 * Turns dist/muster-agent.cjs (built by tsup) into dist/muster-agent: a copy of
 * this Node binary with the bundle injected as a single executable application
 * (https://nodejs.org/api/single-executable-applications.html). The result needs
 * neither Node.js nor node_modules on the target machine; it needs the same OS
 * and CPU architecture as the machine that built it, and glibc.
 *
 * MUSTER_SEA_STRIP=0 keeps the Node binary's symbols (by default they are
 * stripped, which saves ~12 MB and changes nothing at run time).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const SENTINEL_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const root = fileURLToPath(new URL("..", import.meta.url));
const dist = join(root, "dist");
const blob = join(dist, "muster-agent.blob");
const target = join(dist, "muster-agent");
const partial = `${target}.partial`;

const POSTJECT = createRequire(import.meta.url).resolve("postject/dist/cli.js");

const say = (line: string) => process.stdout.write(`build-sea: ${line}\n`);

/** Runs a step quietly (postject's ELF library warns about note sections it does not need); shows its output if it fails. */
function quietly(file: string, args: string[]): void {
  try {
    execFileSync(file, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    process.stderr.write(`${stdout ?? ""}${stderr ?? ""}`);
    throw error;
  }
}

quietly(process.execPath, ["--experimental-sea-config", "sea-config.json"]);

rmSync(partial, { force: true });
copyFileSync(process.execPath, partial);
chmodSync(partial, 0o755);
if (process.env.MUSTER_SEA_STRIP !== "0") {
  try {
    execFileSync("strip", [partial], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    say(`strip unavailable (${(error as Error).message.split("\n")[0]}); keeping the symbols`);
  }
}
quietly(process.execPath, [POSTJECT, partial, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SENTINEL_FUSE]);

// Check the result runs before it takes the final name, so a broken build never looks finished.
const version = execFileSync(partial, ["--version"], { env: {}, encoding: "utf8" }).trim();
if (!version.startsWith("muster-agent ")) throw new Error(`the built executable printed an unexpected version: ${version}`);
renameSync(partial, target);
rmSync(blob, { force: true });
say(`${target} (${(statSync(target).size / 2 ** 20).toFixed(1)} MiB): ${version}`);
