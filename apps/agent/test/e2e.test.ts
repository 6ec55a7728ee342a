import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import * as os from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../scripts/ensure-built.js";

/**
 * The built executable against a real control plane, the way a host runs it:
 * copied alone into an empty folder, the environment cleared, no Node.js on
 * PATH. The steps build on each other (register, restart, re-register, delete).
 */

interface Agent {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The JSON log lines so far. */
  logs(): Array<Record<string, unknown> & { level: string; msg: string }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

let cp: ControlPlane;
let work: string;
let binary: string;
let emptyPath: string;
const running: ChildProcess[] = [];

beforeAll(async () => {
  const built = ensureBuilt();
  cp = await startControlPlane({ MUSTER_HEARTBEAT_INTERVAL_S: "1", MUSTER_OFFLINE_AFTER_S: "3" });
  work = mkdtempSync(join(os.tmpdir(), "muster-agent-e2e-"));
  emptyPath = join(work, "empty-bin");
  mkdirSync(emptyPath);
  binary = join(work, "muster-agent");
  copyFileSync(built, binary);
}, 180_000);

afterAll(async () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function runAgent(args: string[], env: Record<string, string> = {}): Agent {
  const child = spawn(binary, args, { cwd: work, env: { PATH: emptyPath, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    logs: () =>
      stdout
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as Record<string, unknown> & { level: string; msg: string }),
    exited,
  };
}

async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(cp.url + path, {
    method,
    headers: { authorization: `Bearer ${cp.adminKey}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: response.status === 204 ? null : await response.json() };
}

/** Opens a TCP connection and closes it at once; rejects with the socket's error. */
function connectTo(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port }, () => (socket.destroy(), resolve()));
    socket.on("error", reject);
  });
}

function beats(agent: Agent): number {
  return agent.logs().filter((line) => line.msg === "heartbeat accepted").length;
}

describe("muster-agent, the built executable", () => {
  let hostId: string;
  const credentialsFile = () => join(work, "state", "credentials.json");

  it("runs from a folder of its own with an empty environment and no Node.js on PATH", () => {
    expect(spawnSync("node", ["--version"], { env: { PATH: emptyPath } }).error).toMatchObject({ code: "ENOENT" });
    for (let dir = work; dir !== dirname(dir); dir = dirname(dir)) expect(existsSync(join(dir, "node_modules"))).toBe(false);

    const version = spawnSync(binary, ["--version"], { cwd: work, env: { PATH: emptyPath }, encoding: "utf8" });
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^muster-agent 0\.1\.0 \(node v20\.\d+\.\d+, linux-x64\)\n$/);
    expect(version.stderr).toBe("");

    const help = spawnSync(binary, ["--help"], { cwd: work, env: { PATH: emptyPath }, encoding: "utf8" });
    expect(help.status).toBe(0);
    for (const flag of ["--control-plane", "--register", "--address", "--credentials-file", "MUSTER_CONTROL_PLANE", "MUSTER_REGISTRATION_TOKEN", "MUSTER_ADDRESS", "MUSTER_CREDENTIALS_FILE"]) {
      expect(help.stdout).toContain(flag);
    }
  });

  it("refuses bad flags with status 2 and says what is wrong", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--bogus"], /Unknown option '--bogus'/],
      [[], /--control-plane \(or MUSTER_CONTROL_PLANE\) is required/],
      [["--control-plane", "ftp://x"], /--control-plane must be an http:\/\/ or https:\/\/ URL/],
      [["--control-plane", cp.url, "--register", "t"], /--address \(or MUSTER_ADDRESS\) is required with --register/],
      [["--control-plane", cp.url, "--register", "t", "--address", "not an address"], /--address must be IP:PORT/],
    ];
    for (const [args, message] of cases) {
      const result = spawnSync(binary, args, { cwd: work, env: { PATH: emptyPath }, encoding: "utf8" });
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("without credentials says to register first (status 3)", () => {
    const result = spawnSync(binary, ["--control-plane", cp.url], {
      cwd: work,
      env: { PATH: emptyPath, MUSTER_CREDENTIALS_FILE: join(work, "none.json") },
      encoding: "utf8",
    });
    expect(result.status).toBe(3);
    expect(result.stdout).toMatch(/no saved credentials in .*none\.json: register this host first.*--register TOKEN --address IP:PORT/);
  });

  it("a refused registration token exits 4 and writes nothing", async () => {
    const file = join(work, "refused", "credentials.json");
    const agent = runAgent(["--control-plane", cp.url, "--register", "f".repeat(64), "--address", "10.0.0.9:7070", "--credentials-file", file]);
    expect((await agent.exited).code).toBe(4);
    expect(agent.stdout()).toMatch(/registration failed: the control plane at .* refused the registration token: .*Nothing was saved/);
    expect(existsSync(file)).toBe(false);
  });

  let first: Agent;
  let address: string;
  it("registers with a token, detects the machine, comes online and heartbeats, logging JSON lines", async () => {
    const created = await admin("POST", "/v1/hosts", { type: "regular", tags: ["e2e"] });
    expect(created.status).toBe(201);
    hostId = created.json.host.id;

    address = `127.0.0.1:${await freePort()}`;
    first = runAgent(
      ["--control-plane", cp.url, "--register", created.json.registration_token, "--address", address, "--credentials-file", credentialsFile(), "--log-level", "debug"],
    );
    const host = await waitFor("the host to come online", async () => {
      const { json } = await admin("GET", `/v1/hosts/${hostId}`);
      return json.status === "online" ? json : null;
    });
    const disk = statfsSync("/");
    expect(host).toMatchObject({
      address,
      // Go's name for the architecture, whatever uname says (x86_64 here).
      arch: process.arch === "x64" ? "amd64" : process.arch,
      cpu_cores: os.cpus().length,
      memory_mb: Math.floor(os.totalmem() / 2 ** 20),
      disk_gb: Math.floor((disk.blocks * disk.bsize) / 2 ** 30),
      hostname: os.hostname(),
      agent_version: "0.1.0",
    });
    expect(host.os).toContain(os.release());

    await waitFor("three heartbeats", () => beats(first) >= 3);
    const saved = JSON.parse(readFileSync(credentialsFile(), "utf8"));
    expect(saved).toMatchObject({ version: 1, host_id: hostId, control_plane: cp.url, heartbeat_interval_s: 1 });
    expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600);
    // The key was made here; only its CSR went out, and the certificate came back.
    expect(saved.tls.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(new X509Certificate(saved.tls.certificate).subjectAltName).toContain(`URI:spiffe://muster/host/${hostId}`);
    for (const line of first.logs()) expect(line).toMatchObject({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) });
    expect(first.logs()).toContainEqual(expect.objectContaining({ level: "info", msg: "host registered; credentials saved", host_id: hostId }));
    expect(first.stderr()).toBe("");
  });

  it("serves its mTLS endpoint at the registered address, and on no other interface: the control plane's probe gets through over TLS 1.3", async () => {
    await waitFor("the endpoint", () => first.logs().some((line) => line.msg === "mTLS endpoint listening"));
    const saved = JSON.parse(readFileSync(credentialsFile(), "utf8"));
    const { status, json } = await admin("POST", `/v1/hosts/${hostId}/probe`);
    expect(status).toBe(200);
    expect(json).toMatchObject({
      reachable: true,
      tls_version: "TLSv1.3",
      agent_version: "0.1.0",
      certificate: { fingerprint_sha256: new X509Certificate(saved.tls.certificate).fingerprint256.replace(/:/g, "").toLowerCase() },
    });
    // Another loopback address of this machine: bound to every interface, the endpoint would answer there too.
    const port = Number(address.split(":")[1]);
    await expect(connectTo("127.0.0.2", port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(connectTo("127.0.0.1", port)).resolves.toBeUndefined();
  });

  it("stops within 1 s of SIGTERM with status 0, its credentials intact", async () => {
    const before = readFileSync(credentialsFile(), "utf8");
    const sentAt = Date.now();
    first.child.kill("SIGTERM");
    const exit = await first.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - sentAt).toBeLessThan(1_000);
    expect(first.logs().at(-1)).toMatchObject({ msg: "agent stopped" });
    expect(readFileSync(credentialsFile(), "utf8")).toBe(before);
  });

  let second: Agent;
  it("restarts from the saved credentials with only the control plane given, and stops on SIGINT too", async () => {
    const interrupted = runAgent(["--control-plane", cp.url, "--credentials-file", credentialsFile(), "--log-level", "debug"]);
    await waitFor("a heartbeat after the restart", () => beats(interrupted) >= 1, 10_000);
    const sentAt = Date.now();
    interrupted.child.kill("SIGINT");
    const exit = await interrupted.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - sentAt).toBeLessThan(1_000);

    const { json: before } = await admin("GET", `/v1/hosts/${hostId}`);
    second = runAgent(["--control-plane", cp.url], { MUSTER_CREDENTIALS_FILE: credentialsFile(), MUSTER_LOG_LEVEL: "debug" });
    await waitFor("a heartbeat after the restart", () => beats(second) >= 1, 10_000);
    expect(second.logs().some((line) => line.msg === "host registered; credentials saved")).toBe(false);
    const after = await waitFor("the restart's beat to be recorded", async () => {
      const { json } = await admin("GET", `/v1/hosts/${hostId}`);
      return Date.parse(json.last_heartbeat_at) > Date.parse(before.last_heartbeat_at) ? json : null;
    });
    expect(after.status).toBe("online");
  });

  it("--register replaces the saved credentials; the agent still using the old ones stops with status 5 and says to re-register", async () => {
    const { json } = await admin("POST", `/v1/hosts/${hostId}/token`);
    const old = JSON.parse(readFileSync(credentialsFile(), "utf8"));
    const registration = runAgent(["--control-plane", cp.url, "--register-only"], {
      MUSTER_REGISTRATION_TOKEN: json.registration_token,
      MUSTER_ADDRESS: (address = `127.0.0.1:${await freePort()}`),
      MUSTER_CREDENTIALS_FILE: credentialsFile(),
    });
    expect((await registration.exited).code).toBe(0);
    const replaced = JSON.parse(readFileSync(credentialsFile(), "utf8"));
    expect(replaced.host_id).toBe(hostId);
    expect(replaced.token).not.toBe(old.token);
    expect(replaced.refresh_token).not.toBe(old.refresh_token);

    const exit = await second.exited;
    expect(exit.code).toBe(5);
    expect(second.logs().at(-1)).toMatchObject({ level: "error", msg: expect.stringMatching(/^re-registration needed: .*muster hosts token .*--register <NEW_TOKEN> --address /) });
    expect(second.logs()).toContainEqual(expect.objectContaining({ msg: expect.stringMatching(/refused the refresh token/) }));
    expect(JSON.parse(readFileSync(credentialsFile(), "utf8"))).toEqual(replaced);
  });

  it("exits non-zero and removes its credentials when the host is deleted", async () => {
    const third = runAgent(["--control-plane", cp.url, "--credentials-file", credentialsFile(), "--log-level", "debug"]);
    await waitFor("a heartbeat", () => beats(third) >= 1, 10_000);
    expect((await admin("GET", `/v1/hosts/${hostId}`)).json.address).toBe(address);

    expect((await admin("DELETE", `/v1/hosts/${hostId}`)).status).toBe(204);
    const exit = await Promise.race([third.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
    expect(exit?.code).toBe(6);
    expect(existsSync(credentialsFile())).toBe(false);
    expect(third.logs().at(-1)).toMatchObject({ level: "error", msg: expect.stringMatching(/was deleted in the control plane; its credentials are removed/) });
  });

  it("says clearly that a credentials file is corrupt (status 3), without a stack trace", () => {
    const file = join(work, "corrupt.json");
    writeFileSync(file, "{ this is not json", { mode: 0o600 });
    const result = spawnSync(binary, ["--control-plane", cp.url, "--credentials-file", file, "--log-format", "text"], {
      cwd: work,
      env: { PATH: emptyPath },
      encoding: "utf8",
    });
    expect(result.status).toBe(3);
    expect(result.stdout).toMatch(/ERROR the credentials file .*corrupt\.json is not valid JSON .*delete it and register again/);
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(file, "utf8")).toBe("{ this is not json");
  });
});

describe("muster-agent with the default 30 s beats", () => {
  it("exits 6 within 2 s of the DELETE, its channel up: the 4404 close is the deletion, no beat is waited for", async () => {
    const plane = await startControlPlane();
    try {
      const created = await fetch(`${plane.url}/v1/hosts`, {
        method: "POST",
        headers: { authorization: `Bearer ${plane.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "regular" }),
      }).then((response) => response.json() as Promise<{ host: { id: string }; registration_token: string }>);
      const file = join(work, "thirty", "credentials.json");
      const agent = runAgent([
        "--control-plane", plane.url, "--register", created.registration_token, "--address", `127.0.0.1:${await freePort()}`,
        "--credentials-file", file,
      ]);
      await waitFor("the channel", () => agent.logs().some((line) => line.msg.startsWith("agent channel open")), 15_000);

      const deletedAt = Date.now();
      const deleted = await fetch(`${plane.url}/v1/hosts/${created.host.id}`, { method: "DELETE", headers: { authorization: `Bearer ${plane.adminKey}` } });
      expect(deleted.status).toBe(204);
      const exit = await Promise.race([agent.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
      expect(exit?.code).toBe(6);
      expect(exit!.at - deletedAt).toBeLessThan(2_000);
      expect(existsSync(file)).toBe(false);
    } finally {
      await plane.stop();
    }
  }, 60_000);
});
