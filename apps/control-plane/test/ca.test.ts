import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { makeCa } from "./support/pki.js";
import { createTestStores } from "./support/stores.js";

let t: TestApp;
let dir: string;

beforeAll(async () => {
  t = await startTestApp();
  dir = mkdtempSync(join(tmpdir(), "muster-ca-"));
});
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GET /v1/ca", () => {
  it("serves the CA certificate without credentials: a P-256 CA with its fingerprint and expiry", async () => {
    const res = await t.http.get("/v1/ca");
    expect(res.status).toBe(200);
    const cert = new X509Certificate(res.body.certificate);
    expect(cert.ca).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe("ec");
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(res.body.fingerprint_sha256).toBe(cert.fingerprint256.replace(/:/g, "").toLowerCase());
    expect(res.body.expires_at).toBe(new Date(cert.validTo).toISOString());
  });

  it("is generated once and kept in the database: another control plane on the same stores serves the same CA", async () => {
    const other = await startTestApp({ stores: t.stores });
    try {
      const [mine, theirs] = await Promise.all([t.http.get("/v1/ca"), other.http.get("/v1/ca")]);
      expect(theirs.body.fingerprint_sha256).toBe(mine.body.fingerprint_sha256);
    } finally {
      await other.close();
    }
  });

  it("can be given as files instead (Ed25519 here), and then serves that one", async () => {
    const given = await makeCa("Ed25519");
    const certFile = join(dir, "ca.pem");
    const keyFile = join(dir, "ca.key");
    writeFileSync(certFile, given.certificatePem);
    writeFileSync(keyFile, given.keyPem, { mode: 0o600 });
    const fromFiles = await startTestApp({ config: { caCertFile: certFile, caKeyFile: keyFile } });
    try {
      const res = await fromFiles.http.get("/v1/ca");
      expect(res.body.certificate.trim()).toBe(given.certificatePem.trim());
    } finally {
      await fromFiles.close();
    }
  });

  it("refuses to start with a key that does not belong to the given certificate", async () => {
    const [a, b] = await Promise.all([makeCa("ECDSA"), makeCa("ECDSA")]);
    writeFileSync(join(dir, "a.pem"), a.certificatePem);
    writeFileSync(join(dir, "b.key"), b.keyPem);
    const stores = await createTestStores();
    try {
      await expect(startTestApp({ stores, config: { caCertFile: join(dir, "a.pem"), caKeyFile: join(dir, "b.key") } })).rejects.toThrow(
        /does not match its certificate/,
      );
    } finally {
      await stores.dispose();
    }
  });

  it("is in the OpenAPI document", async () => {
    const doc = await t.http.get("/openapi.json");
    expect(doc.body.paths["/v1/ca"].get.operationId).toBe("getCertificateAuthority");
  });
});
