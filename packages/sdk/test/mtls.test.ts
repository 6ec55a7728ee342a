import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { AgentEndpoint, CONTROL_PLANE_URI, HostAgent, MemoryCredentialStore, MusterClient, type HostAgentEvents } from "../src/index.js";
import { issue, makeCa, revocationList, X509Crl, type TestCa } from "./pki-fixtures.js";

/*
 * Host identity end to end: a real control plane process whose CA the test
 * holds (given as files), HostAgent + AgentEndpoint in this process, and real
 * TLS 1.3 both ways on loopback.
 */

const SPECS = { arch: "x86_64", cpu_cores: 2, memory_mb: 2048, disk_gb: 20 };

let dir: string;
let ca: TestCa;
let foreign: TestCa;
let cp: ControlPlane;
let admin: MusterClient;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  [ca, foreign] = await Promise.all([makeCa("Muster host CA"), makeCa("Someone else's CA")]);
  dir = mkdtempSync(join(tmpdir(), "muster-mtls-"));
  writeFileSync(join(dir, "ca.pem"), ca.certPem);
  writeFileSync(join(dir, "ca.key"), ca.keyPem, { mode: 0o600 });
  cp = await startControlPlane({
    MUSTER_CA_CERT_FILE: join(dir, "ca.pem"),
    MUSTER_CA_KEY_FILE: join(dir, "ca.key"),
    MUSTER_HEARTBEAT_INTERVAL_S: "1",
    MUSTER_OFFLINE_AFTER_S: "3",
    MUSTER_HOST_TOKEN_TTL_S: "60",
    // Hosts here are probed again within seconds (the per-host limit has its own test in the control plane's suite).
    MUSTER_PROBE_INTERVAL_S: "0",
  });
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
}, 60_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** A registered, running agent with its mTLS endpoint on a loopback port; every request it sends is recorded. */
async function runningAgent(options: { refreshRatio?: number } = {}) {
  const { host, registration_token } = await admin.hosts.create({ type: "regular" });
  const port = await freePort();
  const sent: Sent[] = [];
  const recording: typeof fetch = async (input, init) => {
    sent.push({ url: String(input), headers: Object.fromEntries(new Headers(init?.headers)), body: String(init?.body ?? "") });
    return fetch(input, init);
  };
  const agent = new HostAgent({ controlPlane: cp.url, credentials: new MemoryCredentialStore(), specs: () => SPECS, fetch: recording, ...options });
  const events: { [K in keyof HostAgentEvents]?: HostAgentEvents[K][] } = {};
  for (const name of ["heartbeat", "heartbeatFailed", "credentialsRefreshed"] as const) {
    agent.on(name, (payload) => void (events[name] ??= [] as never[]).push(payload as never));
  }
  await agent.register({ token: registration_token, address: `127.0.0.1:${port}` });
  await agent.start();
  const refusals: string[] = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (fields: { reason?: string }) => void (fields.reason && refusals.push(fields.reason)) };
  const endpoint = new AgentEndpoint({ agent, port, host: "127.0.0.1", agentVersion: "test-agent", logger });
  await endpoint.start();
  cleanups.push(() => endpoint.stop(), () => agent.stop().then(() => undefined));
  return { hostId: host.id, port, agent, endpoint, sent, events, refusals };
}

/** One call to an agent endpoint as a TLS client with the given certificate (or none). */
function callEndpoint(port: number, client: { cert: string; key: string } | null): Promise<{ status: number; body: any; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/identity",
        agent: false,
        ca: ca.certPem,
        checkServerIdentity: () => undefined,
        ...(client ?? {}),
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text), protocol: (res.socket as TLSSocket).getProtocol() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, "").toLowerCase();

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("mTLS between the control plane and an agent", () => {
  it("probes the agent over TLS 1.3 with the issued certificates both ways, and records it on the host", async () => {
    const { hostId, agent } = await runningAgent();
    const served = agent.credentials!.tls!.certificate;
    const probe = await admin.hosts.probe(hostId);
    expect(probe).toMatchObject({
      host_id: hostId,
      reachable: true,
      tls_version: "TLSv1.3",
      agent_version: "test-agent",
      error: null,
      certificate: { fingerprint_sha256: fingerprintOf(served), expires_at: agent.credentials!.tls!.certificate_expires_at },
    });
    expect(probe.latency_ms).toBeGreaterThan(0);
    expect(await admin.hosts.get(hostId)).toMatchObject({ mtls_enabled: true, cert_fingerprint: fingerprintOf(served) });
  });

  it("the agent endpoint answers a control-plane certificate of its CA, and refuses none, a foreign CA's, an expired one, or another identity", async () => {
    const { hostId, port, refusals } = await runningAgent();
    const controlPlane = await issue(ca, CONTROL_PLANE_URI);
    const ok = await callEndpoint(port, controlPlane);
    expect(ok).toMatchObject({ status: 200, protocol: "TLSv1.3", body: { host_id: hostId } });

    const refused = {
      none: null,
      foreign: await issue(foreign, CONTROL_PLANE_URI),
      expired: await issue(ca, CONTROL_PLANE_URI, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }),
      anotherHost: await issue(ca, `spiffe://muster/host/host-${"z".repeat(26)}`),
    };
    for (const [name, client] of Object.entries(refused)) {
      await expect(callEndpoint(port, client), name).rejects.toThrow();
    }
    expect(refusals).toEqual([
      "no client certificate",
      expect.stringMatching(/^UNABLE_TO_GET_ISSUER_CERT|^UNABLE_TO_VERIFY_LEAF_SIGNATURE/),
      "CERT_HAS_EXPIRED",
      expect.stringMatching(/^not the control plane \(URI:spiffe:\/\/muster\/host\//),
    ]);
  });

  it("the control plane refuses an agent serving a foreign CA's certificate, an expired one, or one naming another host", async () => {
    const cases = {
      foreign: { uri: "self", ca: foreign, error: /^certificate rejected: not signed by this control plane's CA$/ },
      expired: { uri: "self", ca, validity: { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }, error: /^certificate rejected: expired$/ },
      anotherHost: { uri: `spiffe://muster/host/host-${"y".repeat(26)}`, ca, error: /^certificate rejected: does not name this host$/ },
    };
    for (const [name, spec] of Object.entries(cases)) {
      const { host, registration_token } = await admin.hosts.create({ type: "regular" });
      const port = await freePort();
      const served = await issue(spec.ca, spec.uri === "self" ? `spiffe://muster/host/${host.id}` : spec.uri, "validity" in spec ? spec.validity : {});
      const impostor: Server = createServer({ ...served, minVersion: "TLSv1.3" }, (_req, res) => res.end(JSON.stringify({ host_id: host.id })));
      await new Promise<void>((resolve) => impostor.listen(port, "127.0.0.1", resolve));
      cleanups.push(() => new Promise((resolve) => impostor.close(() => resolve())));
      const registered = await fetch(`${cp.url}/v1/hosts/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: registration_token, address: `127.0.0.1:${port}`, ...SPECS }),
      });
      expect(registered.status).toBe(201);

      const probe = await admin.hosts.probe(host.id);
      expect(probe, name).toMatchObject({ reachable: false, latency_ms: null, certificate: null, error: expect.stringMatching(spec.error) });
      expect((await admin.hosts.get(host.id)).mtls_enabled, name).toBe(false);
    }
  });

  it("reports a host that has not registered as not reachable: there is no address to call", async () => {
    const { host } = await admin.hosts.create({ type: "regular" });
    expect(await admin.hosts.probe(host.id)).toMatchObject({ reachable: false, error: "not registered" });
  });
});

describe("revocation", () => {
  it("re-registering a host revokes its certificate: the control plane refuses the agent still serving it", async () => {
    const { hostId, port, agent } = await runningAgent();
    const old = agent.credentials!.tls!;
    const { registration_token } = await admin.hosts.regenerateToken(hostId);
    // Re-installed elsewhere without a certificate yet; the old agent keeps serving at the address it re-registered with.
    const registered = await fetch(`${cp.url}/v1/hosts/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: registration_token, address: `127.0.0.1:${port}`, ...SPECS }),
    });
    expect(registered.status).toBe(201);
    const { crl } = (await (await fetch(`${cp.url}/v1/ca/crl`)).json()) as { crl: string };
    expect(new X509Crl(crl).findRevoked(new X509Certificate(old.certificate).serialNumber)).not.toBeNull();

    const probe = await admin.hosts.probe(hostId);
    expect(probe).toMatchObject({ reachable: false, error: "certificate rejected: revoked" });
    expect(await admin.hosts.get(hostId)).toMatchObject({ mtls_enabled: false, cert_fingerprint: null });
  });

  it("deleting a host revokes its certificate: other agents' endpoints refuse it once their next refresh brings the new list", async () => {
    const deleted = await runningAgent();
    const stolen = deleted.agent.credentials!.tls!;
    const witness = await runningAgent({ refreshRatio: 0.03 });
    const live = await runningAgent();

    await admin.hosts.delete(deleted.hostId);
    const refreshes = witness.events.credentialsRefreshed?.length ?? 0;
    await waitFor("a refresh of the witness", () => (witness.events.credentialsRefreshed?.length ?? 0) > refreshes);
    expect(witness.agent.credentials!.tls!.crl).toBeDefined();

    await expect(callEndpoint(witness.port, { cert: stolen.certificate, key: stolen.private_key })).rejects.toThrow();
    // A live host's certificate passes the revocation check, and is refused only for not being the control plane.
    const liveTls = live.agent.credentials!.tls!;
    await expect(callEndpoint(witness.port, { cert: liveTls.certificate, key: liveTls.private_key })).rejects.toThrow();
    expect(witness.refusals).toEqual(["CERT_REVOKED", expect.stringMatching(/^not the control plane/)]);
    expect(await callEndpoint(witness.port, await issue(ca, CONTROL_PLANE_URI))).toMatchObject({ status: 200 });
  }, 30_000);
});

describe("a CA bundle, as agents hold one during a CA rotation", () => {
  it("the endpoint answers the control plane's certificate of either CA, and checks each against its own CA's revocation list", async () => {
    const next = await makeCa("Muster host CA ca-next");
    const served = await issue(ca, `spiffe://muster/host/host-${"b".repeat(26)}`);
    const [fromOld, fromNext, revoked] = [await issue(ca, CONTROL_PLANE_URI), await issue(next, CONTROL_PLANE_URI), await issue(next, CONTROL_PLANE_URI)];
    const far = new Date(Date.now() + 3600_000).toISOString();
    // The new CA first, as the control plane sends them; the revoked certificate is on the second list.
    const credentials = new MemoryCredentialStore({
      version: 1,
      host_id: `host-${"b".repeat(26)}`,
      control_plane: "http://127.0.0.1:9",
      token: "t",
      token_expires_at: far,
      refresh_token: "r",
      refresh_token_expires_at: far,
      heartbeat_interval_s: 60,
      obtained_at: new Date().toISOString(),
      tls: {
        private_key: served.key,
        certificate: served.cert,
        certificate_expires_at: far,
        ca_certificate: `${next.certPem}\n${ca.certPem}\n`,
        crl: (await revocationList(next, [new X509Certificate(revoked.cert).serialNumber])) + (await revocationList(ca, [])),
      },
    });
    const agent = new HostAgent({ controlPlane: "http://127.0.0.1:9", credentials, channel: false });
    await agent.start();
    const refusals: string[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (fields: { reason?: string }) => void (fields.reason && refusals.push(fields.reason)) };
    const port = await freePort();
    const endpoint = new AgentEndpoint({ agent, port, host: "127.0.0.1", logger });
    await endpoint.start();
    cleanups.push(() => endpoint.stop(), () => agent.stop().then(() => undefined));

    expect(await callEndpoint(port, fromOld)).toMatchObject({ status: 200 });
    expect(await callEndpoint(port, fromNext)).toMatchObject({ status: 200 });
    await expect(callEndpoint(port, revoked)).rejects.toThrow();
    expect(refusals).toEqual(["CERT_REVOKED"]);
  });
});

describe("certificate-bound refresh tokens", () => {
  it("a stolen refresh token is useless without the host's key", async () => {
    const { agent } = await runningAgent();
    await agent.stop();
    const stolen = agent.credentials!.refresh_token;
    const res = await fetch(`${cp.url}/v1/hosts/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: stolen }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/bound to the host's certificate key/);
  });
});

describe("certificate rotation", () => {
  it("renews the certificate with each refresh and swaps it into the running endpoint with no dropped heartbeat; the key never leaves", async () => {
    // Refresh after 3% of the 60 s token: about every 2 s.
    const { hostId, agent, events, sent, port } = await runningAgent({ refreshRatio: 0.03 });
    const first = agent.credentials!.tls!;
    expect((await admin.hosts.probe(hostId)).certificate!.fingerprint_sha256).toBe(fingerprintOf(first.certificate));

    await waitFor("two refreshes", () => (events.credentialsRefreshed?.length ?? 0) >= 2);
    const latest = agent.credentials!.tls!;
    expect(latest.certificate).not.toBe(first.certificate);
    expect(latest.private_key).not.toBe(first.private_key);
    const probe = await admin.hosts.probe(hostId);
    expect(probe).toMatchObject({ reachable: true, certificate: { fingerprint_sha256: fingerprintOf(latest.certificate) } });
    expect(await callEndpoint(port, await issue(ca, CONTROL_PLANE_URI))).toMatchObject({ status: 200 });

    expect(events.heartbeatFailed ?? []).toEqual([]);
    expect(events.heartbeat!.length).toBeGreaterThanOrEqual(2);
    expect((await admin.hosts.get(hostId)).status).toBe("online");

    const keys = [first.private_key, ...events.credentialsRefreshed!.map((event) => event.credentials.tls!.private_key)];
    const wire = JSON.stringify(sent);
    expect(sent.filter((request) => request.url.endsWith("/auth/refresh")).length).toBeGreaterThanOrEqual(2);
    expect(wire).not.toMatch(/PRIVATE KEY/);
    for (const key of keys) expect(wire).not.toContain(key.split("\n")[1]);
  }, 30_000);
});
