import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { and, eq, isNull } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { hostCertificates } from "../src/db/schema/index.js";
import { signRevocationList } from "../src/pki/crl.js";
import { x509 } from "../src/pki/x509.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { eventually, listen } from "./support/channel.js";
import { Factories } from "./support/factories.js";
import { keyPair, makeCsr, refreshProof } from "./support/pki.js";

/**
 * The revocation list costs nothing per request: GET /v1/ca/crl (no
 * credentials) never builds or signs; the list is signed once per change to
 * the revoked set, shared through the stores with every other process, and
 * served from memory with an ETag. Renewals do not grow it.
 */
let a: TestApp;
let b: TestApp;
let f: Factories;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  a = await startTestApp({ startLoops: true });
  b = await startTestApp({ startLoops: true, stores: a.stores });
  f = new Factories(a);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await b.close();
  await a.close();
});
afterEach(() => vi.restoreAllMocks());

const signings = (app: TestApp) => vi.spyOn(app.runtime.deps.ca.active, "revocationList");
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
const listed = (crl: string, pem: string) => new x509.X509Crl(crl).findRevoked(serialOf(pem)) !== null;

async function deletedHostCertificate(): Promise<string> {
  const { registration_token, host } = await f.regularHost();
  const creds = await f.register(registration_token, { csr: await makeCsr(await keyPair()) });
  expect((await a.http.delete(`/v1/hosts/${host.id}`, { key: a.adminKey })).status).toBe(204);
  return creds.certificate!;
}

describe("GET /v1/ca/crl", () => {
  it("never builds or signs: a hundred requests are served from memory, with an ETag, Cache-Control and 304 for If-None-Match", async () => {
    await a.http.get("/v1/ca/crl");
    const signed = signings(a);
    const first = await a.http.get("/v1/ca/crl");
    expect(first.status).toBe(200);
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get("cache-control")).toBe("public, no-cache");
    for (let i = 0; i < 100; i++) expect((await a.http.get("/v1/ca/crl")).headers.get("etag")).toBe(etag);

    const unchanged = await a.http.get("/v1/ca/crl", { headers: { "if-none-match": etag! } });
    expect(unchanged.status).toBe(304);
    expect(unchanged.body ?? "").toBe("");
    expect(unchanged.headers.get("etag")).toBe(etag);
    expect((await a.http.get("/v1/ca/crl", { headers: { "if-none-match": '"stale"' } })).status).toBe(200);
    expect(signed).not.toHaveBeenCalled();
  });

  it("is signed once after a change, by the process that made it; another process takes that copy without signing", async () => {
    const before = (await b.http.get("/v1/ca/crl")).headers.get("etag");
    const signedA = signings(a);
    const signedB = signings(b);
    const certificate = await deletedHostCertificate();
    expect(signedA).toHaveBeenCalledTimes(1);

    const served = await a.http.get("/v1/ca/crl");
    expect(listed(served.body.crl, certificate)).toBe(true);
    const fromB = await eventually(async () => {
      const res = await b.http.get("/v1/ca/crl");
      return res.headers.get("etag") !== before ? res : undefined;
    }, 1_000);
    expect(fromB.headers.get("etag")).toBe(served.headers.get("etag"));
    expect(listed(fromB.body.crl, certificate)).toBe(true);
    expect(signedB).not.toHaveBeenCalled();
    expect(signedA).toHaveBeenCalledTimes(1);
  });

  it("a process starting beside others serves the stored list without signing it", async () => {
    const served = await a.http.get("/v1/ca/crl");
    const c = await startTestApp({ stores: a.stores });
    closers.push(() => c.close());
    const signed = signings(c);
    const res = await c.http.get("/v1/ca/crl");
    expect(res.headers.get("etag")).toBe(served.headers.get("etag"));
    expect(res.body.crl).toBe(served.body.crl);
    expect(signed).not.toHaveBeenCalled();
  });

  it("registration and refresh answers carry the list served, signed no more often", async () => {
    const signed = signings(a);
    const keys = await keyPair();
    const { registration_token } = await f.regularHost();
    const creds = await f.register(registration_token, { csr: await makeCsr(keys) });
    const served = (await a.http.get("/v1/ca/crl")).body.crl;
    expect(creds.crl).toBe(served);
    const refreshed = await a.http.post("/v1/hosts/auth/refresh", {
      body: { refresh_token: creds.refresh_token, csr: await makeCsr(await keyPair()), proof: await refreshProof(keys, creds.refresh_token) },
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.crl).toBe(served);
    expect(signed).not.toHaveBeenCalled();
  });

  it("over a socket, the list in memory goes out from the server's lane, as the app would answer; anything else goes to the app", async () => {
    const fresh = await startTestApp({ stores: a.stores });
    closers.push(() => fresh.close());
    const served = await listen(fresh);
    closers.push(() => served.close());
    const loads = vi.spyOn(fresh.runtime.deps.revocationLists, "current");

    // No list in memory yet: the app loads it.
    const first = await fetch(`${served.baseUrl}/v1/ca/crl`);
    expect(first.status).toBe(200);
    expect(loads).toHaveBeenCalledTimes(1);
    const etag = first.headers.get("etag")!;
    const body = (await first.json()) as { crl: string };
    expect(body.crl).toMatch(/^-----BEGIN X509 CRL-----\n/);

    // In memory now: the lane answers alike, 200 and 304, without the app.
    const fromLane = await fetch(`${served.baseUrl}/v1/ca/crl`);
    expect(fromLane.status).toBe(200);
    expect(await fromLane.json()).toEqual(body);
    for (const name of ["etag", "cache-control", "content-type"]) expect(fromLane.headers.get(name)).toBe(first.headers.get(name));
    expect(fromLane.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const unchanged = await fetch(`${served.baseUrl}/v1/ca/crl`, { headers: { "if-none-match": `W/${etag}` } });
    expect(unchanged.status).toBe(304);
    expect(loads).toHaveBeenCalledTimes(1);

    // A query string is the app's, which refuses a parameter the route does not take (the lane would have sent the list).
    const withQuery = await fetch(`${served.baseUrl}/v1/ca/crl?fresh=1`);
    expect(withQuery.status).toBe(400);
    expect(((await withQuery.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
    const metrics = (await fresh.http.get("/metrics")).body as string;
    expect(metrics).toMatch(/muster_http_requests_total\{method="GET",route="\/v1\/ca\/crl",status="304"\} 1/);
  });
});

describe("renewals do not grow the list", () => {
  it("a host holds at most 2 live certificates; the ones superseded are untrusted but not listed", async () => {
    let keys = await keyPair();
    const { registration_token, host } = await f.regularHost();
    let creds = await f.register(registration_token, { csr: await makeCsr(keys) });
    const certificates = [creds.certificate!];
    const etag = (await a.http.get("/v1/ca/crl")).headers.get("etag");
    for (let i = 0; i < 4; i++) {
      const next = await keyPair();
      const res = await a.http.post("/v1/hosts/auth/refresh", {
        body: { refresh_token: creds.refresh_token, csr: await makeCsr(next), proof: await refreshProof(keys, creds.refresh_token) },
      });
      expect(res.status).toBe(200);
      [creds, keys] = [res.body, next];
      certificates.push(creds.certificate!);
    }
    const live = await a.stores.database.db
      .select({ serial: hostCertificates.serial })
      .from(hostCertificates)
      .where(and(eq(hostCertificates.hostId, host.id), isNull(hostCertificates.revokedAt), isNull(hostCertificates.supersededAt)));
    expect(live.map((row) => row.serial).sort()).toEqual(certificates.slice(-2).map((pem) => serialOf(pem).toLowerCase()).sort());
    const crl = await a.http.get("/v1/ca/crl");
    expect(crl.headers.get("etag")).toBe(etag);
    for (const pem of certificates) expect(listed(crl.body.crl, pem)).toBe(false);
  });

  it("a host cannot refresh (and so mint certificates) faster than its refresh limit, whichever token it presents", async () => {
    const limited = await startTestApp({ stores: a.stores, config: { rateLimitPerToken: 3 } });
    closers.push(() => limited.close());
    let keys = await keyPair();
    const { registration_token } = await f.regularHost();
    let creds = await f.register(registration_token, { csr: await makeCsr(keys) });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const next = await keyPair();
      const res = await limited.http.post("/v1/hosts/auth/refresh", {
        body: { refresh_token: creds.refresh_token, csr: await makeCsr(next), proof: await refreshProof(keys, creds.refresh_token) },
      });
      statuses.push(res.status);
      if (res.status !== 200) {
        expect(res.body.error.message).toMatch(/too many credential refreshes of this host \(at most 3 a minute\)/);
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
        break;
      }
      [creds, keys] = [res.body, next];
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe("building a long list", () => {
  it("yields to the event loop between slices and stays a valid, signed CRL", async () => {
    const ca = a.runtime.deps.ca.active;
    const entries = Array.from({ length: 6_000 }, (_, i) => ({ serial: (0x10_0000 + i).toString(16).padStart(32, "f"), revokedAt: new Date("2026-01-01T00:00:00Z") }));
    entries.push({ serial: "00ff01", revokedAt: new Date("2061-06-01T00:00:00Z") });
    let turns = 0;
    let building = true;
    const counting = (async () => {
      while (building) {
        turns++;
        await nextTurn();
      }
    })();
    const pem = await ca.revocationList(entries, new Date("2026-01-01T00:00:00Z"), new Date("2026-01-02T00:00:00Z"));
    building = false;
    await counting;
    expect(turns).toBeGreaterThan(3);

    // OpenSSL reads it as Node's TLS will (the JavaScript parser caps its ASN.1 node count below this length).
    const dir = mkdtempSync(join(tmpdir(), "muster-crl-"));
    writeFileSync(join(dir, "crl.pem"), pem);
    writeFileSync(join(dir, "ca.pem"), ca.certificatePem);
    const checked = spawnSync("openssl", ["crl", "-in", join(dir, "crl.pem"), "-CAfile", join(dir, "ca.pem"), "-noout", "-text"], { encoding: "utf8" });
    rmSync(dir, { recursive: true, force: true });
    expect(checked.stderr).toContain("verify OK");
    expect(checked.stdout.match(/Serial Number:/g)).toHaveLength(6_001);
    expect(checked.stdout).toContain(`Serial Number: ${entries[4_321]!.serial.toUpperCase()}`);
    expect(checked.stdout).toMatch(/Serial Number: FF01\n\s+Revocation Date: Jun {2}1 00:00:00 2061 GMT/);
  });

  it("leaves an empty list out and carries a CRL number", async () => {
    const ca = a.runtime.deps.ca.active;
    const pem = await signRevocationList(
      {
        issuer: new Uint8Array(ca.certificate.subjectName.toArrayBuffer()),
        authorityKeyIdentifier: new Uint8Array((await x509.AuthorityKeyIdentifierExtension.create(ca.certificate)).rawData),
        algorithm: Buffer.from("300a06082a8648ce3d040302", "hex"),
        sign: async () => Buffer.from("3006020101020101", "hex"),
      },
      [],
      new Date("2026-01-01T00:00:00Z"),
      new Date("2026-01-02T00:00:00Z"),
    );
    const crl = new x509.X509Crl(pem);
    expect(crl.entries).toEqual([]);
    expect(crl.getExtension("2.5.29.20")).not.toBeNull();
  });
});
