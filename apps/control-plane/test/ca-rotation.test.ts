import type { webcrypto } from "node:crypto";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompactSign } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { HostCredentials } from "@muster/contract";
import { CertificateAuthority } from "../src/pki/ca.js";
import { REFRESH_PROOF_TYP, refreshTokenThumbprint } from "../src/pki/refresh-proof.js";
import { x509 } from "../src/pki/x509.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";
import { keyPair, makeCa, makeCsr } from "./support/pki.js";
import { createTestStores, type TestStores } from "./support/stores.js";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
const PEM_CRL = /-----BEGIN X509 CRL-----[^-]+-----END X509 CRL-----/g;
const fingerprintOf = (cert: X509Certificate) => cert.fingerprint256.replace(/:/g, "").toLowerCase();

interface Enrolled {
  creds: HostCredentials;
  keys: webcrypto.CryptoKeyPair;
}

let stores: TestStores;
let t: TestApp;
let other: TestApp;
let f: Factories;

/** Two control planes on fresh stores for the describe block: each rotation story starts from one CA. */
function twoControlPlanes(): void {
  beforeAll(async () => {
    stores = await createTestStores();
    t = await startTestApp({ stores, startLoops: true });
    other = await startTestApp({ stores, startLoops: true });
    f = new Factories(t);
  });
  afterAll(async () => {
    await t?.close();
    await other?.close();
    await stores?.dispose();
  });
}

async function enroll(): Promise<Enrolled> {
  const keys = await keyPair();
  const { registration_token } = await f.regularHost();
  return { creds: await f.register(registration_token, { csr: await makeCsr(keys) }), keys };
}

/** A refresh as the agent makes it: a new key's CSR, and the proof of the key the refresh token is bound to. */
async function refresh(host: Enrolled, app = t): Promise<Enrolled> {
  const keys = await keyPair();
  const payload = new TextEncoder().encode(JSON.stringify({ ath: refreshTokenThumbprint(host.creds.refresh_token) }));
  const proof = await new CompactSign(payload).setProtectedHeader({ alg: "ES256", typ: REFRESH_PROOF_TYP }).sign(host.keys.privateKey);
  const res = await app.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: host.creds.refresh_token, csr: await makeCsr(keys), proof } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { creds: res.body, keys };
}

const status = async () => (await t.http.get("/v1/system/ca", { key: t.adminKey })).body;
const rotate = (body: unknown) => t.http.post("/v1/system/ca/rotate", { key: t.adminKey, body });
const issuedBy = (pem: string, ca: X509Certificate) => new X509Certificate(pem).verify(ca.publicKey);

describe("a CA rotation, step by step", () => {
  twoControlPlanes();
  let oldCa: X509Certificate;
  let newCa: X509Certificate;
  let before: Enrolled;

  it("shows standby with one CA before it starts", async () => {
    oldCa = new X509Certificate((await t.http.get("/v1/ca")).body.certificate);
    before = await enroll();
    expect((await f.heartbeat(before.creds)).status).toBe(204);
    expect(await status()).toEqual({
      phase: "standby",
      source: "database",
      active: { id: "ca", fingerprint_sha256: fingerprintOf(oldCa), created_at: expect.any(String), expires_at: new Date(oldCa.validTo).toISOString() },
      previous: null,
      rotation_started_at: null,
      hosts_on_previous_ca: 0,
      online_hosts_on_previous_ca: 0,
    });
  });

  it("start: a new CA signs, both are served (the new one first) by this control plane and every other at once", async () => {
    await other.http.get("/v1/ca/crl");
    const signed = vi.spyOn(CertificateAuthority.prototype, "revocationList");
    const res = await rotate({ action: "start" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      phase: "rotating",
      active: { id: expect.stringMatching(/^ca-[a-z2-7]{26}$/) },
      previous: { id: "ca", fingerprint_sha256: fingerprintOf(oldCa) },
      rotation_started_at: res.body.active.created_at,
      hosts_on_previous_ca: 1,
      online_hosts_on_previous_ca: 1,
    });
    const served = (await t.http.get("/v1/ca")).body;
    const bundle = served.certificate.match(PEM_CERTIFICATE)!;
    expect(bundle).toHaveLength(2);
    newCa = new X509Certificate(bundle[0]!);
    expect(fingerprintOf(newCa)).toBe(res.body.active.fingerprint_sha256);
    expect(served.fingerprint_sha256).toBe(fingerprintOf(newCa));
    expect(fingerprintOf(new X509Certificate(bundle[1]!))).toBe(fingerprintOf(oldCa));
    await expect.poll(async () => (await other.http.get("/v1/ca")).body.certificate, { timeout: 5000 }).toBe(served.certificate);

    const lists = await t.http.get("/v1/ca/crl");
    const crls = (lists.body.crl as string).match(PEM_CRL)!;
    expect(crls.map((pem) => new x509.X509Crl(pem).issuer)).toEqual([newCa.subject.replace(/\n/g, ", "), oldCa.subject.replace(/\n/g, ", ")]);
    // Signed once per CA by the process that rotated, and taken as it is by the other, which had a list of the old CA alone.
    await expect.poll(async () => (await other.http.get("/v1/ca/crl")).headers.get("etag"), { timeout: 5000 }).toBe(lists.headers.get("etag"));
    expect(signed).toHaveBeenCalledTimes(2);
    expect(signed.mock.contexts).toEqual(t.runtime.deps.ca.trusted);
    signed.mockRestore();
  });

  it("hands the new CA's certificates and both CAs to every registration and refresh, in either control plane", async () => {
    const fresh = await enroll();
    expect(issuedBy(fresh.creds.certificate!, newCa)).toBe(true);
    expect(fresh.creds.ca_certificate!.match(PEM_CERTIFICATE)).toHaveLength(2);
    expect(fresh.creds.crl!.match(PEM_CRL)).toHaveLength(2);

    const moved = await enroll();
    const refreshed = await refresh(moved, other);
    expect(issuedBy(refreshed.creds.certificate!, newCa)).toBe(true);
  });

  it("lists each CA's revoked certificates in that CA's list only", async () => {
    const doomed = await enroll();
    expect((await t.http.delete(`/v1/hosts/${doomed.creds.host.id}`, { key: t.adminKey })).status).toBe(204);
    const serial = new X509Certificate(doomed.creds.certificate!).serialNumber;
    const [fromNew, fromOld] = ((await t.http.get("/v1/ca/crl")).body.crl as string).match(PEM_CRL)!.map((pem) => new x509.X509Crl(pem));
    expect(fromNew!.findRevoked(serial)).not.toBeNull();
    expect(fromOld!.findRevoked(serial)).toBeNull();
  });

  it("will not start twice", async () => {
    const res = await rotate({ action: "start" });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toMatch(/already in progress .*complete it first/);
  });

  it("complete: refused while online hosts still hold the previous CA's certificates, saying how to move them", async () => {
    const res = await rotate({ action: "complete" });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toMatch(/^1 online host\(s\) still hold certificates of the previous CA; .*refresh_credentials.*"force": true/);
    expect((await status()).phase).toBe("rotating");
  });

  it("a host that refreshes moves to the new CA; then the rotation completes and the previous CA is gone everywhere", async () => {
    before = await refresh(before);
    expect(issuedBy(before.creds.certificate!, newCa)).toBe(true);
    expect(await status()).toMatchObject({ hosts_on_previous_ca: 0, online_hosts_on_previous_ca: 0 });

    const res = await rotate({ action: "complete" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ phase: "standby", previous: null, rotation_started_at: null, active: { fingerprint_sha256: fingerprintOf(newCa) } });
    expect((await t.http.get("/v1/ca")).body.certificate.match(PEM_CERTIFICATE)).toHaveLength(1);
    await expect.poll(async () => (await other.http.get("/v1/ca")).body.fingerprint_sha256, { timeout: 5000 }).toBe(fingerprintOf(newCa));
    expect((await f.heartbeat(before.creds)).status).toBe(204);

    const audit = (await t.http.get("/v1/audit?limit=500", { key: t.adminKey })).body.items.filter((entry: { action: string }) => entry.action.startsWith("ca."));
    expect(audit.map((entry: { action: string }) => entry.action)).toEqual(["ca.rotation_completed", "ca.rotation_started"]);
    expect(audit[0].metadata).toMatchObject({ retired_ca_id: "ca", retired_fingerprint_sha256: fingerprintOf(oldCa), hosts_made_to_refresh: 0, forced: false });
    expect(audit[1].metadata).toMatchObject({ previous_ca_id: "ca", fingerprint_sha256: fingerprintOf(newCa) });
  });

  it("will not complete what was not started", async () => {
    const res = await rotate({ action: "complete" });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toMatch(/no CA rotation is in progress/);
  });
});

describe("completing a CA rotation with hosts still on the previous CA", () => {
  twoControlPlanes();

  it("forced: their host tokens stop at once, their refresh tokens still work and bring the new CA's certificate", async () => {
    const online = await enroll();
    const silent = await enroll();
    expect((await f.heartbeat(online.creds)).status).toBe(204);
    expect((await rotate({ action: "start" })).status).toBe(200);
    const newCa = new X509Certificate((await t.http.get("/v1/ca")).body.certificate.match(PEM_CERTIFICATE)[0]);
    expect(await status()).toMatchObject({ hosts_on_previous_ca: 2, online_hosts_on_previous_ca: 1 });

    const res = await rotate({ action: "complete", force: true });
    expect(res.status).toBe(200);
    for (const host of [online, silent]) {
      const beat = await f.heartbeat(host.creds);
      expect(beat.status).toBe(401);
      const back = await refresh(host);
      expect(issuedBy(back.creds.certificate!, newCa)).toBe(true);
      expect(back.creds.ca_certificate!.match(PEM_CERTIFICATE)).toHaveLength(1);
      expect((await f.heartbeat(back.creds)).status).toBe(204);
    }
    const [completed] = (await t.http.get("/v1/audit?action=ca.rotation_completed", { key: t.adminKey })).body.items;
    expect(completed.metadata).toMatchObject({ hosts_made_to_refresh: 2, forced: true });
  });

  it("a refresh token spent before the rotation still gives itself away: reuse revokes the host", async () => {
    const host = await enroll();
    const spent = host.creds.refresh_token;
    const live = await refresh(host);
    expect((await rotate({ action: "start" })).status).toBe(200);
    expect((await rotate({ action: "complete", force: true })).status).toBe(200);
    expect((await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: spent } })).status).toBe(401);
    const afterReuse = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: live.creds.refresh_token } });
    expect(afterReuse.status).toBe(401);
  });

  it("a control plane that missed the lists' announcement serves the lists of the CAs it trusts once it has reloaded them", async () => {
    await other.http.get("/v1/ca/crl");
    await other.runtime.deps.revocationLists.stop();
    try {
      const countOn = async (app: TestApp) => ((await app.http.get("/v1/ca/crl")).body.crl as string).match(PEM_CRL)!.length;
      expect((await rotate({ action: "start" })).status).toBe(200);
      await expect.poll(() => countOn(other), { timeout: 5000 }).toBe(2);
      expect((await rotate({ action: "complete", force: true })).status).toBe(200);
      await expect.poll(() => countOn(other), { timeout: 5000 }).toBe(1);
      expect((await other.http.get("/v1/ca/crl")).headers.get("etag")).toBe((await t.http.get("/v1/ca/crl")).headers.get("etag"));
    } finally {
      await other.runtime.deps.revocationLists.start();
    }
  });
});

describe("CA rotation, refused", () => {
  it("for a CA given as files (409): those are rotated by replacing the files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-ca-files-"));
    const given = await makeCa("ECDSA");
    writeFileSync(join(dir, "ca.pem"), given.certificatePem);
    writeFileSync(join(dir, "ca.key"), given.keyPem, { mode: 0o600 });
    const fromFiles = await startTestApp({ config: { caCertFile: join(dir, "ca.pem"), caKeyFile: join(dir, "ca.key") } });
    try {
      const res = await fromFiles.http.post("/v1/system/ca/rotate", { key: fromFiles.adminKey, body: { action: "start" } });
      expect(res.status).toBe(409);
      expect(res.body.error.message).toMatch(/given as files/);
      expect((await fromFiles.http.get("/v1/system/ca", { key: fromFiles.adminKey })).body).toMatchObject({ phase: "standby", source: "files", active: { id: "ca", created_at: null } });
    } finally {
      await fromFiles.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
