import { once } from "node:events";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createServer as createTcpServer, type AddressInfo, type Server } from "node:net";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostProbe } from "@muster/contract";
import { hosts } from "../src/db/schema/index.js";
import { AddressPolicy, type Lookup } from "../src/net/address-policy.js";
import { PROBE_FAILURES, PROBES_IN_FLIGHT, PROBES_PER_TEAM_PER_MINUTE } from "../src/services/probe.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, type TeamFixture } from "./support/factories.js";
import { keyPair, keyPem, makeCa, makeCsr, refreshProof } from "./support/pki.js";

/**
 * The probe is not a port scanner: an owner's action, rate-limited per host
 * and per team, a few at a time per process, connecting only to checked
 * addresses, and answering one of a fixed set of reasons.
 */
let t: TestApp;
let f: Factories;
let team: TeamFixture;
// Real time: the agents' certificates are checked by a real TLS stack.
const clock = new FakeClock(Date.now());
const servers: Array<Server | HttpsServer> = [];

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
  team = await f.team();
});
afterAll(async () => {
  for (const server of servers) server.close();
  await t.close();
});

const REASONS: string[] = Object.values(PROBE_FAILURES);

async function serve<S extends Server | HttpsServer>(server: S): Promise<{ server: S; port: number; connections: () => number }> {
  let connections = 0;
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return { server, port: (server.address() as AddressInfo).port, connections: () => connections };
}

/** A byoc host of the team registered at 127.0.0.1:`port`, with a certificate for a key the test holds. */
async function hostAt(port: number) {
  const keys = await keyPair();
  const { registration_token, host } = await f.host(team.owner.key, { type: "byoc", team_id: team.team.id });
  const creds = await f.register(registration_token, { address: `127.0.0.1:${port}`, csr: await makeCsr(keys) });
  return { hostId: host.id, keys, creds };
}

/** An agent endpoint as muster-agent serves it (TLS 1.3, the host's certificate, its identity), minus the client check. */
async function agentServing(certificate: { key: string; cert: string }, hostId: () => string) {
  return serve(
    createHttpsServer({ ...certificate, minVersion: "TLSv1.3" }, (_req, res) => res.end(JSON.stringify({ host_id: hostId(), agent_version: "fake-1" }))),
  );
}

/** A registered host with an agent serving its own certificate. */
async function liveAgent() {
  let id = "";
  const keys = await keyPair();
  const { registration_token, host } = await f.host(team.owner.key, { type: "byoc", team_id: team.team.id });
  id = host.id;
  // The port must be known before registering; the certificate only after. Serve through a swappable context.
  const placeholder = await makeCa("ECDSA");
  const agent = await agentServing({ key: placeholder.keyPem, cert: placeholder.certificatePem }, () => id);
  const creds = await f.register(registration_token, { address: `127.0.0.1:${agent.port}`, csr: await makeCsr(keys) });
  agent.server.setSecureContext({ key: await keyPem(keys), cert: creds.certificate! });
  return { hostId: id, keys, creds, agent };
}

const probe = (hostId: string, key = team.owner.key) => t.http.post(`/v1/hosts/${hostId}/probe`, { key });
const nextWindow = () => clock.advance(t.config.probeIntervalS * 1000);

describe("who may probe", () => {
  it("owners probe; members get 403 and read the last result on the host", async () => {
    const { hostId, agent } = await liveAgent();
    const answer = await probe(hostId);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ reachable: true, tls_version: "TLSv1.3", agent_version: "fake-1", error: null });

    nextWindow();
    const refused = await probe(hostId, team.member.key);
    expect(refused.status).toBe(403);
    const host = await t.http.get(`/v1/hosts/${hostId}`, { key: team.member.key });
    expect(host.body.last_probe).toEqual(answer.body);
    expect(host.body.mtls_enabled).toBe(true);
    expect(agent.connections()).toBe(1);
  });
});

describe("limits", () => {
  it("one probe of a host per interval: 429 with Retry-After until it has passed", async () => {
    const { hostId } = await hostAt(1);
    expect((await probe(hostId)).status).toBe(200);
    const again = await probe(hostId);
    expect(again.status).toBe(429);
    expect(again.body.error.message).toMatch(/too many probes of this host \(at most 1 per 10 s\)/);
    expect(Number(again.headers.get("retry-after"))).toBeGreaterThan(0);
    nextWindow();
    expect((await probe(hostId)).status).toBe(200);
  });

  it(`at most ${PROBES_PER_TEAM_PER_MINUTE} probes a minute in one team`, async () => {
    const own = await f.team();
    clock.advance(60_000);
    const statuses: number[] = [];
    for (let i = 0; i <= PROBES_PER_TEAM_PER_MINUTE; i++) {
      const { host } = await f.host(own.owner.key, { type: "byoc", team_id: own.team.id });
      const res = await t.http.post(`/v1/hosts/${host.id}/probe`, { key: own.owner.key });
      statuses.push(res.status);
      if (res.status === 429) expect(res.body.error.message).toMatch(/too many probes in this team/);
    }
    expect(statuses.filter((status) => status === 200)).toHaveLength(PROBES_PER_TEAM_PER_MINUTE);
    expect(statuses.at(-1)).toBe(429);
  });

  it(`at most ${PROBES_IN_FLIGHT} probes in flight per process; the rest are refused at once`, async () => {
    // Accepts and never answers: each probe waits for its timeout.
    const silent = await serve(createTcpServer(() => {}));
    const team2 = await f.team();
    const ids: string[] = [];
    for (let i = 0; i <= PROBES_IN_FLIGHT; i++) {
      const { registration_token, host } = await f.host(team2.owner.key, { type: "byoc", team_id: team2.team.id });
      await f.register(registration_token, { address: `127.0.0.1:${silent.port}` });
      ids.push(host.id);
    }
    const hanging = ids.slice(0, PROBES_IN_FLIGHT).map((id) => t.http.post(`/v1/hosts/${id}/probe`, { key: team2.owner.key }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await t.http.post(`/v1/hosts/${ids.at(-1)}/probe`, { key: team2.owner.key });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.body.error.message).toMatch(/running 4 probes already/);
    for (const answer of await Promise.all(hanging)) expect(answer.body).toMatchObject({ reachable: false, error: "timed out" });
    // Their slots are free again.
    const { host } = await f.host(team2.owner.key, { type: "byoc", team_id: team2.team.id });
    expect((await t.http.post(`/v1/hosts/${host.id}/probe`, { key: team2.owner.key })).status).toBe(200);
  }, 30_000);
});

describe("reasons", () => {
  const failure = async (hostId: string): Promise<HostProbe> => {
    nextWindow();
    const res = await probe(hostId);
    expect(res.status).toBe(200);
    expect(REASONS).toContain(res.body.error);
    return res.body;
  };

  it("names one of a fixed set, never what Node or OpenSSL said", async () => {
    const closed = await serve(createTcpServer((socket) => socket.destroy()));
    const foreignCa = await makeCa("ECDSA");
    const foreign = await agentServing({ key: foreignCa.keyPem, cert: foreignCa.certificatePem }, () => "x");
    const nothing = await serve(createTcpServer());
    const port = nothing.port;
    nothing.server.close();

    expect((await failure((await hostAt(port)).hostId)).error).toBe(PROBE_FAILURES.refused);
    expect((await failure((await hostAt(closed.port)).hostId)).error).toBe(PROBE_FAILURES.handshake);
    expect((await failure((await hostAt(foreign.port)).hostId)).error).toBe(PROBE_FAILURES.wrongCa);
    const { host } = await f.host(team.owner.key, { type: "byoc", team_id: team.team.id });
    expect((await failure(host.id)).error).toBe(PROBE_FAILURES.notRegistered);
  });

  it("refuses a certificate of another host, and one superseded by two renewals", async () => {
    const other = await liveAgent();
    const impostor = await hostAt(other.agent.port);
    expect((await failure(impostor.hostId)).error).toBe(PROBE_FAILURES.wrongHost);

    const { hostId, keys, creds, agent } = await liveAgent();
    let [current, currentKeys] = [creds, keys];
    for (let i = 0; i < 2; i++) {
      const next = await keyPair();
      const res = await t.http.post("/v1/hosts/auth/refresh", {
        body: { refresh_token: current.refresh_token, csr: await makeCsr(next), proof: await refreshProof(currentKeys, current.refresh_token) },
      });
      expect(res.status).toBe(200);
      [current, currentKeys] = [res.body, next];
    }
    // The agent still serves its first certificate: valid, of the CA, naming the host, not revoked, but no longer trusted.
    expect((await failure(hostId)).error).toBe(PROBE_FAILURES.superseded);
    agent.server.setSecureContext({ key: await keyPem(currentKeys), cert: current.certificate! });
    nextWindow();
    expect((await probe(hostId)).body).toMatchObject({ reachable: true, error: null });
  });
});

describe("addresses at connect time", () => {
  it("never connects to an address the policy refuses now, though it was allowed at registration", async () => {
    const { hostId, agent } = await liveAgent();
    const strict = await startTestApp({ stores: t.stores, clock, config: { probeAllowCidrs: [] } });
    try {
      nextWindow();
      const res = await strict.http.post(`/v1/hosts/${hostId}/probe`, { key: team.owner.key });
      expect(res.body).toMatchObject({ reachable: false, error: PROBE_FAILURES.addressNotAllowed });
      expect(agent.connections()).toBe(0);
    } finally {
      await strict.close();
    }
  });

  it("resolves a name once, checks every answer, and connects to the address it checked", async () => {
    const { hostId, agent, creds } = await liveAgent();
    const port = Number(creds.host.address!.split(":")[1]);
    const answers = new Map<string, string[]>([
      ["agent.test", ["127.0.0.1"]],
      ["rebound.test", ["127.0.0.1", "169.254.169.254"]],
    ]);
    const lookups: string[] = [];
    const lookup: Lookup = async (name) => (lookups.push(name), (answers.get(name) ?? []).map((address) => ({ address, family: 4 })));
    const original = t.runtime.deps.addresses;
    t.runtime.deps.addresses = new AddressPolicy({ allow: ["127.0.0.0/8"] }, lookup);
    try {
      const { db } = t.stores.database;
      await db.update(hosts).set({ address: `agent.test:${port}` }).where(eq(hosts.id, hostId));
      nextWindow();
      expect((await probe(hostId)).body).toMatchObject({ reachable: true });
      expect(lookups).toEqual(["agent.test"]);
      expect(agent.connections()).toBe(1);

      await db.update(hosts).set({ address: `rebound.test:${port}` }).where(eq(hosts.id, hostId));
      expect((await failure(hostId)).error).toBe(PROBE_FAILURES.addressNotAllowed);
      expect(agent.connections()).toBe(1);
    } finally {
      t.runtime.deps.addresses = original;
    }

    async function failure(id: string) {
      nextWindow();
      return (await probe(id)).body as HostProbe;
    }
  });
});
