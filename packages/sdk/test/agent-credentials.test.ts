import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HeartbeatMetrics, RegisterHostBody } from "@muster/contract";
import { Value } from "@sinclair/typebox/value";
import { CredentialsFileError, refreshDueAt, type StoredCredentials } from "../src/agent/credentials.js";
import { FileCredentialStore, type CredentialFs } from "../src/agent/file-store.js";
import { createMetricsSampler, detectHostSpecs } from "../src/agent/specs.js";
import { FakeClock, FakeControlPlane } from "./agent-fakes.js";

const root = fs.mkdtempSync(join(os.tmpdir(), "muster-agent-creds-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = () => fs.mkdtempSync(join(root, `${++counter}-`));

function credentials(serial = 1): StoredCredentials {
  const cp = new FakeControlPlane(new FakeClock());
  for (let i = 1; i < serial; i++) cp.issue();
  return cp.issue();
}

const mode = (path: string) => fs.statSync(path).mode & 0o777;

describe("FileCredentialStore", () => {
  it("saves JSON of mode 0600 in a folder of mode 0700, and loads it back", async () => {
    const path = join(freshDir(), "state", "credentials.json");
    const store = new FileCredentialStore(path);
    const saved = credentials();
    const previousUmask = process.umask(0);
    try {
      await store.save(saved);
    } finally {
      process.umask(previousUmask);
    }
    expect(mode(path)).toBe(0o600);
    expect(mode(join(path, ".."))).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(path, "utf8"))).toEqual(saved);
    expect(await new FileCredentialStore(path).load()).toEqual(saved);
  });

  it("tightens a file that was readable by others to 0600 when it replaces it", async () => {
    const path = join(freshDir(), "credentials.json");
    fs.writeFileSync(path, JSON.stringify(credentials()), { mode: 0o644 });
    await new FileCredentialStore(path).save(credentials(2));
    expect(mode(path)).toBe(0o600);
  });

  it("leaves the previous credentials intact when the process dies in the middle of a write", async () => {
    const dir = freshDir();
    const path = join(dir, "credentials.json");
    const before = credentials(1);
    await new FileCredentialStore(path).save(before);

    // The write stops halfway and nothing cleans up after it, as when the process is killed.
    const dying: CredentialFs = {
      ...fs,
      writeSync: ((fd: number, data: string) => {
        fs.writeSync(fd, data.slice(0, data.length / 2));
        throw Object.assign(new Error("killed"), { code: "EINTR" });
      }) as unknown as typeof fs.writeSync,
      unlinkSync: () => {
        throw new Error("dead processes do not clean up");
      },
    };
    await expect(new FileCredentialStore(path, { fs: dying }).save(credentials(2))).rejects.toBeInstanceOf(CredentialsFileError);

    expect(fs.readdirSync(dir).filter((name) => name.endsWith(".tmp"))).toHaveLength(1);
    expect(await new FileCredentialStore(path).load()).toEqual(before);
  });

  it("leaves the previous credentials intact and no temporary file behind when the disk is full", async () => {
    const dir = freshDir();
    const path = join(dir, "credentials.json");
    const before = credentials(1);
    await new FileCredentialStore(path).save(before);
    const full: CredentialFs = {
      ...fs,
      fsyncSync: () => {
        throw Object.assign(new Error("ENOSPC"), { code: "ENOSPC" });
      },
    };
    const error = await new FileCredentialStore(path, { fs: full }).save(credentials(2)).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CredentialsFileError);
    expect(error).toMatchObject({ problem: "unwritable" });
    expect((error as Error).message).toBe(`cannot save the credentials file ${path}: no space left on the device`);
    expect(fs.readdirSync(dir)).toEqual(["credentials.json"]);
    expect(await new FileCredentialStore(path).load()).toEqual(before);
  });

  it("replaces the file by rename, so a reader holding the old file never sees a mix", async () => {
    const path = join(freshDir(), "credentials.json");
    const store = new FileCredentialStore(path);
    await store.save(credentials(1));
    const inodeBefore = fs.statSync(path).ino;
    const reader = fs.openSync(path, "r");
    await store.save(credentials(2));
    const oldView = JSON.parse(fs.readFileSync(reader, "utf8")) as StoredCredentials;
    fs.closeSync(reader);
    expect(oldView).toEqual(credentials(1));
    expect(fs.statSync(path).ino).not.toBe(inodeBefore);
  });

  it("returns null when there is no file", async () => {
    expect(await new FileCredentialStore(join(freshDir(), "none.json")).load()).toBeNull();
  });

  it("says clearly that a corrupt file is not JSON, and what to do", async () => {
    const path = join(freshDir(), "credentials.json");
    fs.writeFileSync(path, '{"version": 1, "host_id": "host-');
    const error = await new FileCredentialStore(path).load().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialsFileError);
    expect(error).toMatchObject({ problem: "corrupt" });
    expect((error as Error).message).toMatch(
      new RegExp(`^the credentials file ${path} is not valid JSON \\(.+\\); delete it and register again with a new registration token$`),
    );
  });

  it("names the field that is wrong in a file that is JSON but not credentials", async () => {
    const path = join(freshDir(), "credentials.json");
    const { refresh_token: _, ...incomplete } = credentials();
    fs.writeFileSync(path, JSON.stringify(incomplete));
    const error = await new FileCredentialStore(path).load().catch((e: unknown) => e);
    expect(error).toMatchObject({ problem: "corrupt" });
    expect((error as Error).message).toMatch(/is not a valid Muster credentials file \(\/refresh_token: .+\); delete it and register again/);

    fs.writeFileSync(path, JSON.stringify([1, 2]));
    await expect(new FileCredentialStore(path).load()).rejects.toThrow(/is not a valid Muster credentials file/);
  });

  it("says it cannot read a path that is not a readable file", async () => {
    const path = freshDir();
    const error = await new FileCredentialStore(path).load().catch((e: unknown) => e);
    expect(error).toMatchObject({ problem: "unreadable" });
    expect((error as Error).message).toBe(`cannot read the credentials file ${path}: it is a directory`);
  });

  it("removes the file, and removing a missing file is fine", async () => {
    const path = join(freshDir(), "credentials.json");
    const store = new FileCredentialStore(path);
    await store.save(credentials());
    await store.remove();
    expect(fs.existsSync(path)).toBe(false);
    await store.remove();
  });
});

describe("refreshDueAt", () => {
  it("takes the lifetime from the JWT's own iat and exp, whatever the local clock said", () => {
    const creds = credentials();
    const lifetimeMs = 3600_000;
    const obtainedAt = Date.parse("2030-01-01T00:00:00Z");
    const skewed = { ...creds, obtained_at: new Date(obtainedAt).toISOString() };
    expect(refreshDueAt(skewed, 0.8)).toBe(obtainedAt + 0.8 * lifetimeMs);
  });

  it("falls back to token_expires_at when the token is not a readable JWT", () => {
    const creds = { ...credentials(), token: "opaque", obtained_at: "2026-03-01T00:00:00.000Z", token_expires_at: "2026-03-01T00:10:00.000Z" };
    expect(refreshDueAt(creds, 0.5)).toBe(Date.parse("2026-03-01T00:05:00.000Z"));
  });
});

describe("detectHostSpecs and createMetricsSampler", () => {
  it("detects specs the contract accepts, matching what the OS reports", () => {
    const specs = detectHostSpecs();
    expect(Value.Check(RegisterHostBody, { ...specs, token: "t", address: "10.0.0.7:7070" })).toBe(true);
    // Go's name: Node's x64 is amd64; its arm64 is arm64 already.
    expect(specs.arch).toBe(process.arch === "x64" ? "amd64" : process.arch);
    expect(specs.cpu_cores).toBe(os.cpus().length);
    expect(specs.memory_mb).toBe(Math.floor(os.totalmem() / 2 ** 20));
    const stats = fs.statfsSync("/");
    expect(specs.disk_gb).toBe(Math.floor((stats.blocks * stats.bsize) / 2 ** 30));
    expect(specs.hostname).toBe(os.hostname());
    expect(specs.os).toContain(os.release());
  });

  it("sends an app-specific hash of the machine ID, from the first file that holds one, never the ID itself", () => {
    const dir = freshDir();
    const machineId = "0123456789abcdef0123456789abcdef";
    fs.writeFileSync(join(dir, "dbus-machine-id"), `${machineId}\n`);
    const specs = detectHostSpecs({ machineIdFiles: [join(dir, "missing"), join(dir, "dbus-machine-id")] });
    expect(specs.machine_id).toMatch(/^[0-9a-f]{64}$/);
    expect(specs.machine_id).not.toContain(machineId);
    expect(Value.Check(RegisterHostBody, { ...specs, token: "t", address: "10.0.0.7:7070" })).toBe(true);
    expect(detectHostSpecs({ machineIdFiles: [join(dir, "dbus-machine-id")] }).machine_id).toBe(specs.machine_id);

    fs.writeFileSync(join(dir, "empty"), "\n");
    expect(detectHostSpecs({ machineIdFiles: [join(dir, "empty")] })).not.toHaveProperty("machine_id");
  });

  it("samples live metrics the contract accepts", () => {
    const sample = createMetricsSampler();
    sample();
    for (let i = 0; i < 1e6; i++) Math.sqrt(i);
    const metrics = sample();
    expect(Value.Check(HeartbeatMetrics, metrics)).toBe(true);
    expect(metrics.uptime_s).toBeGreaterThan(0);
    expect(metrics.memory_used_mb).toBeGreaterThan(0);
  });
});
