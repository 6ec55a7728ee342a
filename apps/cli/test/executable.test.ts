import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../../../scripts/ensure-built.js";

/**
 * The two ways docs/cli.md gives to run the CLI: the single executable
 * (`apps/cli/dist/muster`, copied alone into an empty folder and run with no
 * Node.js on PATH) and `pnpm muster …` from the root of the repository. Both
 * end with the documented exit codes.
 */
const REPO = fileURLToPath(new URL("../../..", import.meta.url));

let cp: ControlPlane;
let work: string;
let executable: string;
let emptyPath: string;

beforeAll(async () => {
  const built = ensureBuilt({ app: "cli", name: "muster" });
  work = mkdtempSync(join(tmpdir(), "muster-cli-exe-"));
  emptyPath = join(work, "empty-bin");
  mkdirSync(emptyPath);
  executable = join(work, "muster");
  copyFileSync(built, executable);
  cp = await startControlPlane();
}, 180_000);

afterAll(async () => {
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(file: string, args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(file, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

const unreachable = { MUSTER_URL: "http://127.0.0.1:1", MUSTER_API_KEY: "msk_unused" };

describe("the muster executable", () => {
  const muster = (args: string[], env: Record<string, string> = {}) => run(executable, args, { PATH: emptyPath, ...env }, work);

  it("runs with no Node.js on PATH", async () => {
    const { code, stdout } = await muster(["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("ends with the documented exit codes", async () => {
    const asAdmin = { MUSTER_URL: cp.url, MUSTER_API_KEY: cp.adminKey };
    const ok = await muster(["whoami", "--json"], asAdmin);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ user: { is_admin: true } });
    expect((await muster(["hosts", "get", "host-doesnotexist0000000000"], asAdmin)).code).toBe(1);
    expect((await muster(["whoami"], { MUSTER_URL: cp.url, MUSTER_API_KEY: "msk_not_a_key_at_all_0000000000" })).code).toBe(1);
    expect((await muster(["hosts", "frobnicate"], asAdmin)).code).toBe(2);
    expect((await muster(["whoami"], unreachable)).code).toBe(3);
  });
});

describe("pnpm muster, from the root of the repository", () => {
  it("passes the exit codes through", async () => {
    const env = { PATH: process.env.PATH!, HOME: process.env.HOME ?? tmpdir() };
    const version = await run("pnpm", ["-s", "muster", "--version"], env, REPO);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect((await run("pnpm", ["-s", "muster", "hosts", "frobnicate"], env, REPO)).code).toBe(2);
    expect((await run("pnpm", ["-s", "muster", "whoami"], { ...env, ...unreachable }, REPO)).code).toBe(3);
  });
});
