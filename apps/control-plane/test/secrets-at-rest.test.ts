import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config.js";
import { openEmbedded } from "../src/db/client.js";
import { auditLog, certificateAuthority, signingKeys, webhooks } from "../src/db/schema/index.js";
import { MemoryKv } from "../src/kv/memory.js";
import { SECRET_KEY_FILE } from "../src/secrets/secret-keys.js";
import { parseSecretKey, SecretKey } from "../src/secrets/sealer.js";
import { MIGRATIONS, startTestApp, TEST_SECRET_KEY, type TestApp } from "./support/app.js";
import { makeCa } from "./support/pki.js";
import { createTestStores, type TestStores } from "./support/stores.js";

const newKey = () => randomBytes(32).toString("base64");
const kekId = (key: string) => new SecretKey(parseSecretKey(key)!).id;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** The migrations of the builds before sealing: every one before the migration that adds `sealed_secret`. */
function migrationsBeforeSealing(): string {
  const dir = tempDir("muster-legacy-migrations-");
  cpSync(MIGRATIONS, dir, { recursive: true });
  const journalPath = join(dir, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: { tag: string }[] };
  const sealing = journal.entries.findIndex((entry) => readFileSync(join(dir, `${entry.tag}.sql`), "utf8").includes("sealed_secret"));
  expect(sealing).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, sealing);
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

const WEBHOOK_SECRET = "whsec_a-receivers-own-secret-0123456789";

async function keyRows(t: { stores: TestStores }) {
  const db = t.stores.database.db;
  return { keys: await db.select().from(signingKeys), cas: await db.select().from(certificateAuthority), hooks: await db.select().from(webhooks) };
}

async function expectRefused(start: Promise<TestApp>, message: RegExp): Promise<void> {
  await expect(start).rejects.toThrow(message);
}

/** Control planes started one after another on the same stores, as restarts of one deployment. */
async function withStores(work: (stores: TestStores) => Promise<void>): Promise<void> {
  const stores = await createTestStores();
  try {
    await work(stores);
  } finally {
    await stores.dispose();
  }
}

// The steps build on each other: one database, its keys sealed, then started with the wrong keys, then a new one.
describe("keys at rest", () => {
  let stores: TestStores;
  beforeAll(async () => {
    stores = await createTestStores();
  });
  afterAll(() => stores?.dispose());

  it("keeps every private key and webhook secret sealed under the key-encryption key, naming it on the row; none in plain text", async () => {
    const t = await startTestApp({ stores });
    try {
      expect((await t.http.post("/v1/system/signing-keys/rotate", { key: t.adminKey })).status).toBe(200);
      expect((await t.http.post("/v1/system/ca/rotate", { key: t.adminKey, body: { action: "start" } })).status).toBe(200);
      const hook = await t.http.post("/v1/webhooks", { key: t.adminKey, body: { url: "https://hooks.example.com/muster", types: ["host.*"], secret: WEBHOOK_SECRET } });
      expect(hook.status).toBe(201);
    } finally {
      await t.close();
    }
    const { keys, cas, hooks } = await keyRows({ stores });
    expect(keys).toHaveLength(2);
    expect(cas).toHaveLength(2);
    expect(hooks).toHaveLength(1);
    for (const row of [...keys, ...cas, ...hooks]) expect(row.kekId).toBe(kekId(TEST_SECRET_KEY));
    expect(hooks[0]!.sealedSecret).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(JSON.stringify(hooks)).not.toContain(WEBHOOK_SECRET);
    for (const key of keys) {
      expect(key.secret).toBeNull();
      expect(key.sealedSecret).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    }
    for (const ca of cas) {
      expect(ca.privateKey).toBeNull();
      expect(ca.sealedPrivateKey).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    }
    expect(JSON.stringify({ keys, cas })).not.toContain("PRIVATE KEY");
  });

  it("refuses a start with the wrong key-encryption key, naming both keys, and makes no new CA or signing key", async () => {
    const before = await keyRows({ stores });
    const other = newKey();
    await expectRefused(
      startTestApp({ stores, config: { secretKey: other } }),
      new RegExp(`sealed under the key-encryption key ${kekId(TEST_SECRET_KEY)}, but this process was given ${kekId(other)}`),
    );
    expect(await keyRows({ stores })).toEqual(before);
  });

  it("refuses a start with no key-encryption key outside the embedded data folder", async () => {
    await expectRefused(startTestApp({ stores, config: { secretKey: null } }), /MUSTER_SECRET_KEY \(or MUSTER_SECRET_KEY_FILE\) is required/);
  });

  it("reads the key from MUSTER_SECRET_KEY_FILE instead, and names the file when it holds no key", async () => {
    const dir = tempDir("muster-kek-file-");
    const file = join(dir, "kek");
    writeFileSync(file, `${Buffer.from(TEST_SECRET_KEY, "base64").toString("hex")}\n`, { mode: 0o600 });
    await (await startTestApp({ stores, config: { secretKey: null, secretKeyFile: file } })).close();
    writeFileSync(file, "not a key\n");
    await expectRefused(startTestApp({ stores, config: { secretKey: null, secretKeyFile: file } }), new RegExp(`MUSTER_SECRET_KEY_FILE ${file} must hold 32 random bytes`));
  });

  it("refuses a sealed key moved to another row: each is bound to its row", async () => {
    const [first, second] = (await keyRows({ stores })).keys;
    const db = stores.database.db;
    await db.update(signingKeys).set({ sealedSecret: second!.sealedSecret }).where(eq(signingKeys.kid, first!.kid));
    await expectRefused(startTestApp({ stores }), new RegExp(`signing_keys/${first!.kid} does not open with the key-encryption key`));
    await db.update(signingKeys).set({ sealedSecret: first!.sealedSecret }).where(eq(signingKeys.kid, first!.kid));
  });

  it("moves to a new key-encryption key: given the old one as previous, every key is sealed again under the new one at start", async () => {
    const t = await startTestApp({ stores });
    const fingerprint = (await t.http.get("/v1/ca")).body.fingerprint_sha256;
    await t.close();
    const next = newKey();
    const rotated = await startTestApp({ stores, config: { secretKey: next, secretKeyPrevious: TEST_SECRET_KEY } });
    await rotated.close();
    const { keys, cas, hooks } = await keyRows({ stores });
    for (const row of [...keys, ...cas, ...hooks]) expect(row.kekId).toBe(kekId(next));
    const audit = await stores.database.db.select().from(auditLog).where(eq(auditLog.action, "secret_key.rotated"));
    expect(audit).toEqual([expect.objectContaining({ targetId: kekId(next), metadata: expect.objectContaining({ previous_kek_id: kekId(TEST_SECRET_KEY) }) })]);

    // The old key can go; it no longer opens anything.
    const after = await startTestApp({ stores, config: { secretKey: next } });
    expect((await after.http.get("/v1/ca")).body.fingerprint_sha256).toBe(fingerprint);
    await after.close();
    await expectRefused(startTestApp({ stores, config: { secretKey: TEST_SECRET_KEY } }), /sealed under the key-encryption key/);
  });
});

describe("a database written before sealing", () => {
  it("seals the plain-text keys of a database written before sealing, clears them, and keeps the same CA and signing key", () =>
    withStores(async (stores) => {
      await stores.database.migrate(migrationsBeforeSealing());
      const secret = randomBytes(32);
      const legacyCa = await makeCa("ECDSA");
      const db = stores.database.db;
      await db.execute(sql`insert into signing_keys (kid, algorithm, secret, created_at) values ('k1', 'HS256', ${secret.toString("base64url")}, now())`);
      await db.execute(
        sql`insert into certificate_authority (id, certificate, private_key, created_at) values ('ca', ${legacyCa.certificatePem}, ${legacyCa.keyPem}, now())`,
      );

      const t = await startTestApp({ stores });
      try {
        const { keys, cas } = await keyRows(t);
        expect(keys).toEqual([expect.objectContaining({ kid: "k1", secret: null, kekId: kekId(TEST_SECRET_KEY), retiresAt: null })]);
        expect(cas).toEqual([expect.objectContaining({ id: "ca", privateKey: null, kekId: kekId(TEST_SECRET_KEY), state: "active" })]);
        expect(keys[0]!.sealedSecret).not.toContain(secret.toString("base64url"));

        // The same CA, and tokens the earlier build signed still verify.
        expect((await t.http.get("/v1/ca")).body.certificate.trim()).toBe(legacyCa.certificatePem.trim());
        const now = Math.floor(Date.now() / 1000);
        const token = await new SignJWT({ typ: "host", host_id: `host-${"a".repeat(26)}`, fam: "f" })
          .setProtectedHeader({ alg: "HS256", kid: "k1", typ: "JWT" })
          .setSubject(`host-${"a".repeat(26)}`)
          .setIssuer("muster")
          .setAudience("muster-host")
          .setIssuedAt(now)
          .setExpirationTime(now + 600)
          .setJti("legacy")
          .sign(secret);
        expect(await t.runtime.deps.hostTokens.verify(token)).toMatchObject({ hostId: `host-${"a".repeat(26)}`, family: "f" });

        const audit = await db.select().from(auditLog).where(eq(auditLog.action, "secret_key.sealed"));
        expect(audit).toEqual([
          expect.objectContaining({ actor: "system", targetType: "secret_key", targetId: kekId(TEST_SECRET_KEY), metadata: { keys: ["signing_keys/k1", "certificate_authority/ca"] } }),
        ]);
      } finally {
        await t.close();
      }
      // A later start finds nothing to seal.
      const again = await startTestApp({ stores });
      await again.close();
      expect(await db.select().from(auditLog).where(eq(auditLog.action, "secret_key.sealed"))).toHaveLength(1);
    }));

});

describe("the embedded mode's key-encryption key", () => {
  /** A control plane on an embedded database in `dir`, as `pnpm start` runs it (no MUSTER_SECRET_KEY); `stop` closes it and its database. */
  async function embeddedApp(dir: string, config: Partial<Config> = {}) {
    const database = await openEmbedded(dir);
    const stores: TestStores = { database, kv: new MemoryKv(), dispose: () => database.close() };
    let t: TestApp;
    try {
      t = await startTestApp({ stores, config: { secretKey: null, ...config } });
    } catch (error) {
      await database.close();
      throw error;
    }
    return { t, stores, stop: async () => (await t.close(), await database.close()) };
  }

  it("is made on first start into its own 0600 file beside the database, not in it, and read again at the next", async () => {
    const dir = tempDir("muster-kek-");
    const first = await embeddedApp(dir);
    const fingerprint = (await first.t.http.get("/v1/ca")).body.fingerprint_sha256;
    await first.stop();

    const file = join(dir, SECRET_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, "pg"))).not.toContain(SECRET_KEY_FILE);
    const key = readFileSync(file, "utf8");
    expect(parseSecretKey(key)).not.toBeNull();

    const second = await embeddedApp(dir);
    expect((await second.t.http.get("/v1/ca")).body.fingerprint_sha256).toBe(fingerprint);
    const { keys, cas } = await keyRows(second);
    for (const row of [...keys, ...cas]) expect(row.kekId).toBe(kekId(key));
    await second.stop();
    expect(readFileSync(file, "utf8")).toBe(key);
  });

  it("is never replaced silently: without it the start refuses; with it as the previous key a new one is made and everything sealed again", async () => {
    const dir = tempDir("muster-kek-");
    const first = await embeddedApp(dir);
    const fingerprint = (await first.t.http.get("/v1/ca")).body.fingerprint_sha256;
    await first.stop();
    const file = join(dir, SECRET_KEY_FILE);
    const old = readFileSync(file, "utf8").trim();
    rmSync(file);

    await expect(embeddedApp(dir)).rejects.toThrow(new RegExp(`sealed under the key-encryption key ${kekId(old)}, but ${file} is missing: restore it from the backup`));
    expect(existsSync(file)).toBe(false);

    const rotated = await embeddedApp(dir, { secretKeyPrevious: old });
    expect((await rotated.t.http.get("/v1/ca")).body.fingerprint_sha256).toBe(fingerprint);
    const next = readFileSync(file, "utf8").trim();
    expect(next).not.toBe(old);
    const { keys, cas } = await keyRows(rotated);
    for (const row of [...keys, ...cas]) expect(row.kekId).toBe(kekId(next));
    await rotated.stop();
  });
});
