import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../scripts/ensure-built.js";

/**
 * dist/muster-agent-linux-arm64, the executable for Graviton and Ampere hosts,
 * run on this x86-64 machine under user-mode emulation: Debian's
 * qemu-user-static, with the arm64 C libraries of libc6-arm64-cross and
 * libstdc++6-arm64-cross as the sysroot its dynamic loader is looked up in
 * (.ci/run installs them). It registers with a real control plane, comes
 * online as an arm64 host, heartbeats, and stops cleanly on SIGTERM.
 */
const QEMU = "qemu-aarch64-static";
const SYSROOT = "/usr/aarch64-linux-gnu";

let cp: ControlPlane;
let work: string;
let binary: string;

beforeAll(async () => {
  const missing = [
    spawnSync(QEMU, ["--version"]).error ? `${QEMU} (apt-get install qemu-user-static)` : null,
    existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1")) ? null : `${SYSROOT} (apt-get install libstdc++6-arm64-cross)`,
  ].filter(Boolean);
  if (missing.length > 0) throw new Error(`this test runs the arm64 executable under emulation and needs ${missing.join(" and ")}`);
  binary = ensureBuilt({ arm64: true });
  work = mkdtempSync(join(tmpdir(), "muster-agent-arm64-"));
  cp = await startControlPlane({ MUSTER_HEARTBEAT_INTERVAL_S: "1", MUSTER_OFFLINE_AFTER_S: "3" });
}, 300_000);

afterAll(async () => {
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function emulated(args: string[]) {
  const child = spawn(QEMU, ["-L", SYSROOT, binary, ...args], { cwd: work, env: {}, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

async function until<T>(what: string, check: () => Promise<T | null> | T | null, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("muster-agent for linux-arm64", () => {
  it("runs, and says what it is built for", async () => {
    const run = emulated(["--version"]);
    expect(await run.exited, run.output()).toBe(0);
    expect(run.output()).toMatch(/^muster-agent \S+ \(node v\d+\.\d+\.\d+, linux-arm64\)\n$/);
  });

  it("registers with a control plane, comes online as an arm64 host, heartbeats and stops on SIGTERM", async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${cp.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${cp.adminKey}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then((response) => response.json() as Promise<Record<string, any>>);
    const { host: created, registration_token } = await admin("POST", "/v1/hosts", { type: "regular" });
    const agent = emulated([
      "--control-plane", cp.url,
      "--register", registration_token,
      "--address", `127.0.0.1:${await freePort()}`,
      "--credentials-file", join(work, "credentials.json"),
      "--log-format", "json",
    ]);
    await until("the first heartbeat", () => (agent.output().includes('"msg":"first heartbeat accepted"') ? true : null));
    const host = await until("the host online", async () => {
      const seen = await admin("GET", `/v1/hosts/${created.id}`);
      return seen.status === "online" ? seen : null;
    });
    expect(host).toMatchObject({ arch: "arm64", agent_version: expect.any(String) });
    expect(host.cert_fingerprint).toMatch(/^[0-9a-f]{64}$/);

    agent.child.kill("SIGTERM");
    expect(await agent.exited, agent.output()).toBe(0);
    expect(agent.output()).toContain('"msg":"agent stopped"');
  }, 120_000);
});
