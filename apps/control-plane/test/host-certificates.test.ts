import { X509Certificate, webcrypto } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { x509 } from "../src/pki/x509.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { keyPair, makeCsr, refreshProof as proof } from "./support/pki.js";

let t: TestApp;
let f: Factories;
let ca: X509Certificate;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
  ca = new X509Certificate((await t.http.get("/v1/ca")).body.certificate);
});
afterAll(() => t.close());

async function spki(keys: webcrypto.CryptoKeyPair): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.exportKey("spki", keys.publicKey));
}

/** What every issued host certificate must be: ours, for this key, naming this host and nothing the host asked for. */
async function expectHostCertificate(pem: string, hostId: string, keys: webcrypto.CryptoKeyPair) {
  const cert = new X509Certificate(pem);
  expect(cert.checkIssued(ca)).toBe(true);
  expect(cert.verify(ca.publicKey)).toBe(true);
  expect(cert.ca).toBe(false);
  expect(cert.publicKey.export({ type: "spki", format: "der" })).toEqual(await spki(keys));
  expect(cert.subjectAltName).toBe(`URI:spiffe://muster/host/${hostId}, IP Address:${machineSpecs.address.split(":")[0]}`);
  expect(cert.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
  return cert;
}


describe("registration with a CSR", () => {
  it("returns a certificate for the host's own key, the CA certificate, and records the fingerprint on the host", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const creds = await f.register(created.registration_token, { csr: await makeCsr(keys) });

    const cert = await expectHostCertificate(creds.certificate!, created.host.id, keys);
    expect(creds.ca_certificate?.trim()).toBe(ca.toString().trim());
    expect(creds.certificate_expires_at).toBe(new Date(cert.validTo).toISOString());
    expect(Date.parse(creds.certificate_expires_at!) - clock.now().getTime()).toBe(t.config.hostCertTtlS * 1000);

    const fingerprint = cert.fingerprint256.replace(/:/g, "").toLowerCase();
    expect(creds.host).toMatchObject({ cert_fingerprint: fingerprint, cert_expires_at: creds.certificate_expires_at, mtls_enabled: false });
    const read = await t.http.get(`/v1/hosts/${created.host.id}`, { key: t.adminKey });
    expect(read.body).toMatchObject({ cert_fingerprint: fingerprint, cert_expires_at: creds.certificate_expires_at });
  });

  it("accepts an Ed25519 key and a DNS-name address", async () => {
    const created = await f.regularHost();
    const keys = await keyPair("Ed25519");
    const creds = await f.register(created.registration_token, { csr: await makeCsr(keys, "Ed25519"), address: "worker-7.example.net:7070" });
    const cert = new X509Certificate(creds.certificate!);
    expect(cert.publicKey.asymmetricKeyType).toBe("ed25519");
    expect(cert.subjectAltName).toBe(`URI:spiffe://muster/host/${created.host.id}, DNS:worker-7.example.net`);
  });

  it("without a CSR works as before (SPEC): no certificate fields, none recorded", async () => {
    const created = await f.regularHost();
    const creds = await f.register(created.registration_token);
    expect(creds).not.toHaveProperty("certificate");
    expect(creds).not.toHaveProperty("ca_certificate");
    expect(creds.host).toMatchObject({ cert_fingerprint: null, cert_expires_at: null, mtls_enabled: false });
  });

  it("refuses a CSR of the wrong key type, with names, a foreign subject, a bad signature or no CSR at all (400), and keeps the token usable", async () => {
    const created = await f.regularHost();
    const p256 = await keyPair();
    const rsa = (await webcrypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as webcrypto.CryptoKeyPair;
    const p384 = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const pemOf = async (keys: webcrypto.CryptoKeyPair, signingAlgorithm: { name: string; hash: string }) =>
      (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm })).toString("pem");

    const genuine = new x509.Pkcs10CertificateRequest(await makeCsr(p256));
    const tampered = Buffer.from(genuine.rawData);
    tampered[tampered.length - 5]! ^= 0xff;

    const cases: Array<[string, RegExp]> = [
      [await pemOf(rsa, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }), /ECDSA P-256 or Ed25519 \(got RSASSA-PKCS1-v1_5\)/],
      [await pemOf(p384, { name: "ECDSA", hash: "SHA-384" }), /ECDSA P-256 or Ed25519 \(got ECDSA P-384\)/],
      [
        await makeCsr(p256, "ECDSA", { extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "control-plane.example" }])] }),
        /must request no extensions/,
      ],
      [await makeCsr(p256, "ECDSA", { name: "CN=worker, O=Muster" }), /common name only \(got O\)/],
      [new x509.Pkcs10CertificateRequest(tampered).toString("pem"), /signature does not verify/],
      ["-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", /not a PEM-encoded PKCS#10/],
    ];
    for (const [csr, message] of cases) {
      const res = await t.http.post("/v1/hosts/register", { body: { token: created.registration_token, ...machineSpecs, csr } });
      expect(res.status, csr).toBe(400);
      expect(res.body.error).toMatchObject({ code: "invalid_request", message: expect.stringMatching(message) });
    }
    const certified = await t.http.post("/v1/hosts/register", { body: { token: created.registration_token, ...machineSpecs, csr: await makeCsr(p256) } });
    expect(certified.status).toBe(201);
  });
});

describe("refresh with a CSR", () => {
  it("certifies the new key; the host row follows the newest certificate", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const first = await f.register(created.registration_token, { csr: await makeCsr(keys) });
    clock.advance(60_000);
    const next = await keyPair();
    const res = await t.http.post("/v1/hosts/auth/refresh", {
      body: { refresh_token: first.refresh_token, csr: await makeCsr(next), proof: await proof(keys, first.refresh_token) },
    });
    expect(res.status).toBe(200);
    const cert = await expectHostCertificate(res.body.certificate, created.host.id, next);
    expect(cert.serialNumber).not.toBe(new X509Certificate(first.certificate!).serialNumber);
    expect(res.body.host.cert_fingerprint).toBe(cert.fingerprint256.replace(/:/g, "").toLowerCase());
    expect(res.body.host.cert_fingerprint).not.toBe(first.host.cert_fingerprint);
  });

  it("refuses a bad CSR with 400 before the refresh token is spent", async () => {
    const created = await f.regularHost();
    const creds = await f.register(created.registration_token);
    const bad = await makeCsr(await keyPair(), "ECDSA", { name: "CN=x, OU=evil" });
    const refused = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token, csr: bad } });
    expect(refused.status).toBe(400);
    const ok = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(ok.status).toBe(200);
    expect(ok.body).not.toHaveProperty("certificate");
  });
});

describe("revocation", () => {
  async function revoked(): Promise<x509.X509Crl> {
    const res = await t.http.get("/v1/ca/crl");
    expect(res.status).toBe(200);
    const crl = new x509.X509Crl(res.body.crl);
    expect(await crl.verify({ publicKey: await new x509.X509Certificate(ca.raw).publicKey.export() })).toBe(true);
    expect(res.body.next_update).toBe(new Date(clock.now().getTime() + t.config.hostCertTtlS * 1000).toISOString());
    return crl;
  }
  const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
  const lists = (crl: x509.X509Crl, pem: string) => crl.findRevoked(serialOf(pem)) !== null;

  it("re-registration revokes the earlier certificate; the new one stays good, and the new credentials carry the list", async () => {
    const created = await f.regularHost();
    const first = await f.register(created.registration_token, { csr: await makeCsr(await keyPair()) });
    const token = await t.http.post(`/v1/hosts/${created.host.id}/token`, { key: t.adminKey });
    const second = await f.register(token.body.registration_token, { csr: await makeCsr(await keyPair()) });

    const crl = await revoked();
    expect(lists(crl, first.certificate!)).toBe(true);
    expect(lists(crl, second.certificate!)).toBe(false);
    expect(lists(new x509.X509Crl(second.crl!), first.certificate!)).toBe(true);
    expect(second.host.cert_fingerprint).toBe(new X509Certificate(second.certificate!).fingerprint256.replace(/:/g, "").toLowerCase());
  });

  it("re-registration without a CSR revokes too, and the host shows no certificate", async () => {
    const created = await f.regularHost();
    const first = await f.register(created.registration_token, { csr: await makeCsr(await keyPair()) });
    const token = await t.http.post(`/v1/hosts/${created.host.id}/token`, { key: t.adminKey });
    const second = await f.register(token.body.registration_token);
    expect(lists(await revoked(), first.certificate!)).toBe(true);
    expect(second.host).toMatchObject({ cert_fingerprint: null, cert_expires_at: null });
  });

  it("deleting a host revokes every certificate it has", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const first = await f.register(created.registration_token, { csr: await makeCsr(keys) });
    const refreshed = await t.http.post("/v1/hosts/auth/refresh", {
      body: { refresh_token: first.refresh_token, csr: await makeCsr(await keyPair()), proof: await proof(keys, first.refresh_token) },
    });
    expect((await t.http.delete(`/v1/hosts/${created.host.id}`, { key: t.adminKey })).status).toBe(204);
    const crl = await revoked();
    expect(lists(crl, first.certificate!)).toBe(true);
    expect(lists(crl, refreshed.body.certificate)).toBe(true);
  });

  it("a reused refresh token revokes the host's certificates with its other credentials", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const first = await f.register(created.registration_token, { csr: await makeCsr(keys) });
    const refreshed = await t.http.post("/v1/hosts/auth/refresh", {
      body: { refresh_token: first.refresh_token, csr: await makeCsr(await keyPair()), proof: await proof(keys, first.refresh_token) },
    });
    expect(lists(await revoked(), refreshed.body.certificate)).toBe(false);
    expect((await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: first.refresh_token, proof: await proof(keys, first.refresh_token) } })).status).toBe(401);
    expect(lists(await revoked(), refreshed.body.certificate)).toBe(true);
  });

  it("lists a revoked certificate only until it would have expired anyway", async () => {
    const created = await f.regularHost();
    const first = await f.register(created.registration_token, { csr: await makeCsr(await keyPair()) });
    expect((await t.http.delete(`/v1/hosts/${created.host.id}`, { key: t.adminKey })).status).toBe(204);
    expect(lists(await revoked(), first.certificate!)).toBe(true);
    clock.advance(t.config.hostCertTtlS * 1000 + 1000);
    expect(lists(await revoked(), first.certificate!)).toBe(false);
  });
});

describe("refresh tokens bound to the certificate key", () => {
  const refresh = (body: Record<string, unknown>) => t.http.post("/v1/hosts/auth/refresh", { body });

  it("refuse to refresh without a proof of the key, or with a wrong one, before the token is spent; the key's own proof works", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const creds = await f.register(created.registration_token, { csr: await makeCsr(keys) });
    const token = creds.refresh_token;
    const other = await keyPair();
    const refusals = [
      { refresh_token: token },
      { refresh_token: token, proof: await proof(other, token) },
      { refresh_token: token, proof: await proof(keys, `${token}x`) },
      { refresh_token: token, proof: await proof(keys, token, { typ: "JWT" }) },
      { refresh_token: token, proof: "a.b.c" },
    ];
    for (const body of refusals) {
      const res = await refresh(body);
      expect(res.status, JSON.stringify(body)).toBe(401);
      expect(res.body.error.message).toMatch(/bound to the host's certificate key/);
    }
    const next = await keyPair();
    const ok = await refresh({ refresh_token: token, proof: await proof(keys, token), csr: await makeCsr(next) });
    expect(ok.status).toBe(200);
    // The new token is bound to the new key.
    expect((await refresh({ refresh_token: ok.body.refresh_token, proof: await proof(keys, ok.body.refresh_token) })).status).toBe(401);
    expect((await refresh({ refresh_token: ok.body.refresh_token, proof: await proof(next, ok.body.refresh_token) })).status).toBe(200);
  });

  it("bind Ed25519 keys too (EdDSA proofs)", async () => {
    const created = await f.regularHost();
    const keys = await keyPair("Ed25519");
    const creds = await f.register(created.registration_token, { csr: await makeCsr(keys, "Ed25519") });
    expect((await refresh({ refresh_token: creds.refresh_token, proof: await proof(keys, creds.refresh_token, { alg: "ES256" }).catch(() => "x.y.z") })).status).toBe(401);
    expect((await refresh({ refresh_token: creds.refresh_token, proof: await proof(keys, creds.refresh_token, { alg: "EdDSA" }) })).status).toBe(200);
  });

  it("leave tokens issued without a certificate as they were (no proof needed)", async () => {
    const created = await f.regularHost();
    const creds = await f.register(created.registration_token);
    expect((await refresh({ refresh_token: creds.refresh_token })).status).toBe(200);
  });

  it("still treat a spent token as reuse, whatever the proof", async () => {
    const created = await f.regularHost();
    const keys = await keyPair();
    const creds = await f.register(created.registration_token, { csr: await makeCsr(keys) });
    expect((await refresh({ refresh_token: creds.refresh_token, proof: await proof(keys, creds.refresh_token) })).status).toBe(200);
    expect((await refresh({ refresh_token: creds.refresh_token, proof: await proof(keys, creds.refresh_token) })).status).toBe(401);
    expect(await f.auditOf(created.host.id, "host.refresh_reused")).toHaveLength(1);
  });
});
