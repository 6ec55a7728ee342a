import { execFileSync, spawnSync } from "node:child_process";
import { createPrivateKey, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, throwawayDatabase, type ThrowawayDatabase } from "@muster/testkit";
import { openEmbedded, openPostgres, type Database } from "../src/db/client.js";
import { certificateAuthority, signingKeys } from "../src/db/schema/index.js";
import { parseSecretKey, sealedContext, Sealer, SecretKey } from "../src/secrets/sealer.js";
import { SECRET_KEY_FILE } from "../src/secrets/secret-keys.js";
import { killAll, startMain, stopMain, waitForOutput, type MainProcess } from "./support/main-process.js";
import { keyPair, makeCsr } from "./support/pki.js";
import { storageMode } from "./support/stores.js";

/*
 * What a local user, or a thief of the database's files or backups, finds at
 * rest: the control plane as a process (main.ts), on the suite's storage mode
 * unless a test says embedded.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  killAll();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "muster-at-rest-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Deployment {
  env: Record<string, string>;
  dataDir: string;
  adminKey: string;
  /** The key-encryption key in use (embedded: read from the data folder). */
  secretKey(): Buffer;
  /** The database, opened by the test (the embedded one only while no control plane runs). */
  open(): Promise<Database>;
  database: ThrowawayDatabase | null;
}

/** A deployment on the suite's storage mode: a data folder, or a fresh PostgreSQL database with its key-encryption key. */
async function deployment(mode: "suite" | "embedded" = "suite"): Promise<Deployment> {
  const dataDir = tempDir();
  const adminKey = `at-rest-admin-${randomBytes(16).toString("hex")}`;
  if (mode === "embedded" || storageMode === "embedded") {
    return {
      env: { MUSTER_DATA_DIR: dataDir, MUSTER_ADMIN_KEY: adminKey },
      dataDir,
      adminKey,
      secretKey: () => parseSecretKey(readFileSync(join(dataDir, SECRET_KEY_FILE), "utf8"))!,
      open: () => openEmbedded(dataDir),
      database: null,
    };
  }
  const database = await throwawayDatabase(process.env.DATABASE_URL!, "muster_at_rest");
  cleanups.push(() => database.drop());
  const secretKey = randomBytes(32);
  return {
    env: {
      MUSTER_DATA_DIR: dataDir,
      MUSTER_ADMIN_KEY: adminKey,
      DATABASE_URL: database.url,
      ...(process.env.REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES } : { REDIS_URL: process.env.REDIS_URL! }),
      MUSTER_KV_PREFIX: `at-rest-${randomBytes(6).toString("hex")}:`,
      MUSTER_SECRET_KEY: secretKey.toString("base64"),
    },
    dataDir,
    adminKey,
    secretKey: () => secretKey,
    open: () => openPostgres(database.url),
    database,
  };
}

async function startOn(d: Deployment, extra: Record<string, string> = {}): Promise<{ cp: MainProcess; url: string }> {
  const port = await freePort();
  const cp = startMain({ ...d.env, PORT: String(port), ...extra });
  await waitForOutput(cp, /listening/, 60_000);
  return { cp, url: `http://127.0.0.1:${port}` };
}

async function api(url: string, key: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  expect(res.status, `${method} ${path}: ${text}`).toBeLessThan(300);
  return text ? JSON.parse(text) : null;
}

/** Every folder and file under `dir` with its permission bits. */
function modes(dir: string): Array<{ path: string; mode: number; folder: boolean }> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isDirectory() || entry.isFile())
    .map((entry) => {
      const path = join(entry.parentPath, entry.name);
      return { path, mode: statSync(path).mode & 0o777, folder: entry.isDirectory() };
    });
}

function expectOwnerOnly(dir: string): void {
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  const loose = modes(dir).filter((entry) => entry.mode !== (entry.folder ? 0o700 : 0o600));
  expect(loose.map((entry) => `${entry.path} ${entry.mode.toString(8)}`)).toEqual([]);
}

/** pg_dump from the PATH, or from where Debian's packages put it. */
function pgDump(): string {
  const debian = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").map((version) => `/usr/lib/postgresql/${version}/bin/pg_dump`) : [];
  return ["pg_dump", ...debian].find((path) => spawnSync(path, ["--version"]).status === 0) ?? "pg_dump";
}

const umaskOf = (pid: number) => /^Umask:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];

// Each test starts the control plane several times, as a process.
const PROCESS_TEST_MS = 120_000;

describe("file modes", () => {
  it("brings the data folder and all it holds to owner-only at every start, and removes the pid file on a clean stop", async () => {
    const d = await deployment("embedded");
    chmodSync(d.dataDir, 0o755);
    let { cp, url } = await startOn(d);
    expect(umaskOf(cp.child.pid!)).toBe("0077");
    await api(url, d.adminKey, "POST", "/v1/hosts", { type: "regular" });
    expectOwnerOnly(d.dataDir);
    expect(statSync(join(d.dataDir, SECRET_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(existsSync(join(d.dataDir, "muster.pid"))).toBe(true);
    expect(await stopMain(cp)).toBe(0);
    expect(existsSync(join(d.dataDir, "muster.pid"))).toBe(false);
    expectOwnerOnly(d.dataDir);

    // What a build before this one left: a readable folder, world-readable files.
    chmodSync(d.dataDir, 0o755);
    for (const entry of modes(d.dataDir)) chmodSync(entry.path, entry.folder ? 0o755 : 0o644);
    ({ cp, url } = await startOn(d));
    expectOwnerOnly(d.dataDir);
    expect(await stopMain(cp)).toBe(0);
  }, PROCESS_TEST_MS);

  it("refuses a data folder other users can write into, naming it", async () => {
    const d = await deployment("embedded");
    for (const mode of [0o777, 0o770]) {
      chmodSync(d.dataDir, mode);
      const cp = startMain({ ...d.env, PORT: String(await freePort()) });
      expect(await cp.exited).toBe(1);
      expect(cp.output()).toContain(`the data folder ${d.dataDir} can be written by other users (mode 0${mode.toString(8)})`);
      expect(cp.output()).not.toMatch(/\n\s+at /);
    }
    expect(readdirSync(d.dataDir)).toEqual([]);
  }, PROCESS_TEST_MS);
});

/** The bytes that would let their reader mint credentials, in every encoding they could be stored in. */
const WEBHOOK_SECRET = "whsec_a-receivers-own-secret-0123456789";

async function secretsIn(d: Deployment): Promise<{ names: string[]; needles: Buffer[] }> {
  const database = await d.open();
  try {
    const sealer = new Sealer(new SecretKey(d.secretKey()), null, randomBytes);
    const keys = await database.db.select().from(signingKeys);
    const cas = await database.db.select().from(certificateAuthority);
    const needles: Buffer[] = [Buffer.from("PRIVATE KEY"), Buffer.from(WEBHOOK_SECRET)];
    for (const key of keys) {
      const secret = sealer.open({ kekId: key.kekId!, sealed: key.sealedSecret! }, sealedContext.signingKey(key.kid));
      needles.push(secret, ...["base64", "base64url", "hex"].map((encoding) => Buffer.from(secret.toString(encoding as BufferEncoding))));
    }
    for (const ca of cas) {
      const der = sealer.open({ kekId: ca.kekId!, sealed: ca.sealedPrivateKey! }, sealedContext.certificateAuthority(ca.id));
      const scalar = Buffer.from(createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({ format: "jwk" }).d!, "base64url");
      needles.push(der, scalar, Buffer.from(der.toString("base64").slice(0, 64)), Buffer.from(scalar.toString("base64url")));
    }
    return { names: [...keys.map((key) => key.kid), ...cas.map((ca) => ca.id)], needles };
  } finally {
    await database.close();
  }
}

// The steps build on each other: one deployment, its keys searched for, then started with the wrong keys.
describe("keys at rest", () => {
  let d: Deployment;
  let caFingerprint: string;

  it(`runs with umask 077 and leaves no private key and no signing secret readable in the ${storageMode === "embedded" ? "data folder's bytes (database files and WAL)" : "pg_dump of the database"}`, async () => {
    d = await deployment();
    const { cp, url } = await startOn(d);
    expect(umaskOf(cp.child.pid!)).toBe("0077");
    const enroll = async () => {
      const created = await api(url, d.adminKey, "POST", "/v1/hosts", { type: "regular" });
      const res = await fetch(`${url}/v1/hosts/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: created.registration_token, address: "10.0.0.7:7070", arch: "amd64", cpu_cores: 1, memory_mb: 512, disk_gb: 1, csr: await makeCsr(await keyPair()) }),
      });
      expect(res.status).toBe(201);
    };
    await enroll();
    await api(url, d.adminKey, "POST", "/v1/system/signing-keys/rotate");
    await api(url, d.adminKey, "POST", "/v1/system/ca/rotate", { action: "start" });
    await api(url, d.adminKey, "POST", "/v1/webhooks", { url: "https://hooks.example.com/muster", types: ["host.*"], secret: WEBHOOK_SECRET });
    await enroll();
    caFingerprint = (await api(url, d.adminKey, "GET", "/v1/ca")).fingerprint_sha256;
    expect(await stopMain(cp)).toBe(0);

    const { names, needles } = await secretsIn(d);
    expect(names).toHaveLength(4); // two signing keys, two CAs
    const found: string[] = [];
    const scan = (where: string, bytes: Buffer) => {
      for (const needle of needles) if (bytes.includes(needle)) found.push(`${where}: ${needle.toString("hex").slice(0, 16)}…`);
    };
    if (d.database === null) {
      const files = modes(d.dataDir).filter((entry) => !entry.folder && !entry.path.endsWith(SECRET_KEY_FILE));
      expect(files.some((entry) => entry.path.includes("pg_wal"))).toBe(true);
      for (const file of files) scan(file.path, readFileSync(file.path));
    } else {
      const dump = execFileSync(pgDump(), ["--dbname", d.database.url], { maxBuffer: 256 * 1024 * 1024 });
      expect(dump.toString()).toContain("COPY public.signing_keys");
      scan("pg_dump", dump);
    }
    expect(found).toEqual([]);
  }, PROCESS_TEST_MS);

  it("refuses to start with a wrong or missing key-encryption key, in one message, and never makes a new CA; the right one starts it again", async () => {
    const expectRefused = async (extra: Record<string, string>, message: RegExp) => {
      const refused = startMain({ ...d.env, PORT: String(await freePort()), ...extra });
      expect(await refused.exited).toBe(1);
      expect(refused.output()).toMatch(message);
      expect(refused.output()).not.toMatch(/\n\s+at /);
      return refused.output();
    };
    const wrong = await expectRefused(
      { MUSTER_SECRET_KEY: randomBytes(32).toString("base64") },
      /^muster: the database's keys .* are sealed under the key-encryption key kek-[a-z2-7]{26}, but this process was given kek-/,
    );
    expect(wrong.trim().split("\n")).toHaveLength(1);
    if (d.database === null) {
      const file = join(d.dataDir, SECRET_KEY_FILE);
      renameSync(file, `${file}.away`);
      await expectRefused({}, new RegExp(`^muster: the database in ${d.dataDir} holds keys sealed under the key-encryption key kek-[a-z2-7]{26}, but ${file} is missing: restore it from the backup`));
      renameSync(`${file}.away`, file);
    } else {
      await expectRefused({ MUSTER_SECRET_KEY: "" }, /MUSTER_SECRET_KEY \(or MUSTER_SECRET_KEY_FILE\) is required with DATABASE_URL: .*openssl rand -base64 32/);
    }

    const { cp, url } = await startOn(d);
    expect((await api(url, d.adminKey, "GET", "/v1/ca")).fingerprint_sha256).toBe(caFingerprint);
    expect(umaskOf(cp.child.pid!)).toBe("0077");
    expect(await stopMain(cp)).toBe(0);
  }, PROCESS_TEST_MS);
});
