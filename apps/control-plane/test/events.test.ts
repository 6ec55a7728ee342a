import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MusterEvent } from "@muster/contract";
import { expireCommands, markDelivered, recordResult } from "../src/services/commands.js";
import { readyHead } from "../src/services/events.js";
import { UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { EventStream, quietFor } from "./support/events.js";
import { Factories } from "./support/factories.js";
import { keyPair, makeCsr, refreshProof as proof } from "./support/pki.js";

/**
 * Every event type is written by the change that causes it and by no other:
 * one admin stream watches everything while each change is made, and after
 * each it must hold exactly the events that change implies, with `data` the
 * resource as the API returns it then.
 */
let t: TestApp;
let f: Factories;
let stream: EventStream;
const clock = new FakeClock();
/** How long "nothing else arrives" is watched for after each change. */
const QUIET_MS = 150;

beforeAll(async () => {
  // The one host that beats here goes silent alone; the mass-silence breaker has its own tests.
  t = await startTestApp({ clock, config: { massOfflinePercent: 100 } });
  f = new Factories(t);
  await t.runtime.deps.events.start();
  stream = await EventStream.open(t, { key: t.adminKey });
});
afterAll(async () => {
  await stream.close();
  await t.close();
});

/** Runs a change and returns exactly the events it caused (failing on any other within QUIET_MS). */
async function causes(change: () => Promise<unknown>, count: number): Promise<MusterEvent[]> {
  // What earlier setup wrote (teams, hosts) must have arrived first, or it would be counted here.
  const head = String(await readyHead(t.runtime.deps.db));
  await stream.until(() => stream.lastId === head || BigInt(stream.lastId ?? 0) > BigInt(head), 5_000, () => `the stream to reach ${head}`);
  const before = stream.events.length;
  await change();
  await stream.waitFor(before + count);
  await quietFor(stream, QUIET_MS);
  return stream.events.slice(before);
}

const summary = (events: MusterEvent[]) => events.map((event) => `${event.type} ${event.host_id}`);
const getHost = async (id: string) => (await t.http.get(`/v1/hosts/${id}`, { key: t.adminKey })).body;

describe("host events", () => {
  it("host.created: the host as created, with its team and tags", async () => {
    const team = await f.team();
    let created: any;
    const events = await causes(async () => {
      created = await f.host(team.owner.key, { type: "byoc", tags: ["gpu", "zone-a"] });
    }, 1);
    expect(summary(events)).toEqual([`host.created ${created.host.id}`]);
    expect(events[0]).toMatchObject({ team_id: team.team.id, host_id: created.host.id });
    expect(events[0]!.data).toEqual(created.host);
    expect(Date.parse(events[0]!.occurred_at)).toBe(clock.now().getTime());
  });

  it("host.token_regenerated, host.registered (and host.certificate_issued with a CSR), nothing for a refused registration", async () => {
    const created = await f.regularHost();
    const id = created.host.id;
    let token = "";
    expect(
      summary(
        await causes(async () => {
          token = (await t.http.post(`/v1/hosts/${id}/token`, { key: t.adminKey })).body.registration_token;
        }, 1),
      ),
    ).toEqual([`host.token_regenerated ${id}`]);

    await causes(async () => expect((await t.http.post("/v1/hosts/register", { body: { token: created.registration_token, ...specs } })).status).toBe(401), 0);

    const registered = await causes(() => f.register(token), 1);
    expect(summary(registered)).toEqual([`host.registered ${id}`]);
    expect(registered[0]!.data).toEqual(await getHost(id));

    let again = "";
    await causes(async () => (again = (await t.http.post(`/v1/hosts/${id}/token`, { key: t.adminKey })).body.registration_token), 1);
    const withCsr = await causes(async () => f.register(again, { csr: await makeCsr(await keyPair()) }), 2);
    expect(summary(withCsr)).toEqual([`host.registered ${id}`, `host.certificate_issued ${id}`]);
    expect(withCsr[0]!.data).toMatchObject({ cert_fingerprint: null });
    expect(withCsr[1]!.data).toEqual(await getHost(id));
    expect((withCsr[1]!.data as { cert_fingerprint: string | null }).cert_fingerprint).not.toBeNull();
  });

  it("host.certificate_issued at a refresh with a CSR, nothing at one without; host.credentials_revoked when a refresh token is reused", async () => {
    let created: any;
    await causes(async () => (created = await f.regularHost()), 1);
    const id = created.host.id;
    const keys = await keyPair();
    let creds: any;
    await causes(async () => (creds = await f.register(created.registration_token, { csr: await makeCsr(keys) })), 2);
    let next: any;
    const renewed = await causes(async () => {
      next = (
        await t.http.post("/v1/hosts/auth/refresh", {
          body: { refresh_token: creds.refresh_token, csr: await makeCsr(keys), proof: await proof(keys, creds.refresh_token) },
        })
      ).body;
    }, 1);
    expect(summary(renewed)).toEqual([`host.certificate_issued ${id}`]);

    let plain: any;
    await causes(async () => {
      plain = (await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: next.refresh_token, proof: await proof(keys, next.refresh_token) } })).body;
    }, 0);
    expect(plain.refresh_token).toBeDefined();

    const revoked = await causes(
      async () =>
        expect(
          (await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: next.refresh_token, proof: await proof(keys, next.refresh_token) } })).status,
        ).toBe(401),
      1,
    );
    expect(summary(revoked)).toEqual([`host.credentials_revoked ${id}`]);
    expect(revoked[0]!.data).toEqual(await getHost(id));
    expect(revoked[0]!.data).toMatchObject({ cert_fingerprint: null });
  });

  it("host.tags_changed for a tag added or removed, with the removed tag still matching ?tag=; nothing when nothing changed", async () => {
    const created = await f.regularHost({ tags: ["keep"] });
    const id = created.host.id;
    const tagged = await EventStream.open(t, { key: t.adminKey, query: "tag=gone-soon" });
    const added = await causes(() => t.http.post(`/v1/hosts/${id}/tags`, { key: t.adminKey, body: { tag: "gone-soon" } }), 1);
    expect(summary(added)).toEqual([`host.tags_changed ${id}`]);
    expect(added[0]!.data).toMatchObject({ tags: ["gone-soon", "keep"] });
    await causes(() => t.http.post(`/v1/hosts/${id}/tags`, { key: t.adminKey, body: { tag: "gone-soon" } }), 0);

    const removed = await causes(() => t.http.delete(`/v1/hosts/${id}/tags/gone-soon`, { key: t.adminKey }), 1);
    expect(summary(removed)).toEqual([`host.tags_changed ${id}`]);
    expect(removed[0]!.data).toEqual(await getHost(id));
    expect(removed[0]!.data).toMatchObject({ tags: ["keep"] });
    await causes(() => t.http.delete(`/v1/hosts/${id}/tags/gone-soon`, { key: t.adminKey }), 0);

    // The tag's own stream saw both: the host gaining it and the host losing it.
    expect(summary(await tagged.waitFor(2))).toEqual([`host.tags_changed ${id}`, `host.tags_changed ${id}`]);
    await tagged.close();
  });

  it("host.online at the first beat and after an offline spell, host.offline when the window passes, nothing for beats between", async () => {
    const creds = await f.enrolledHost();
    const id = creds.host.id;
    const online = await causes(() => f.heartbeat(creds), 1);
    expect(summary(online)).toEqual([`host.online ${id}`]);
    expect(online[0]!.data).toEqual(await getHost(id));
    expect(online[0]!.data).toMatchObject({ status: "online" });

    clock.advance(1_000);
    await causes(async () => {
      await f.heartbeat(creds);
      await t.runtime.deps.liveness.flushScores();
      await t.runtime.deps.liveness.flush({ all: true });
    }, 0);

    clock.advance(t.config.offlineAfterS * 1000 + UNFLUSHED_ALLOWANCE_MS + 1);
    const offline = await causes(() => t.runtime.deps.liveness.sweepOnce(), 1);
    expect(summary(offline)).toEqual([`host.offline ${id}`]);
    expect(offline[0]!.data).toEqual(await getHost(id));
    expect(offline[0]!.data).toMatchObject({ status: "offline" });

    expect(summary(await causes(() => f.heartbeat(creds), 1))).toEqual([`host.online ${id}`]);
    await causes(() => t.runtime.deps.liveness.sweepOnce(), 0);
  });

  it("host.deleted with the host as it was deleted, once", async () => {
    const created = await f.regularHost();
    const id = created.host.id;
    const deleted = await causes(() => t.http.delete(`/v1/hosts/${id}`, { key: t.adminKey }), 1);
    expect(summary(deleted)).toEqual([`host.deleted ${id}`]);
    expect(deleted[0]!.data).toMatchObject({ id, status: "pending", updated_at: clock.now().toISOString() });
    await causes(async () => expect((await t.http.delete(`/v1/hosts/${id}`, { key: t.adminKey })).status).toBe(404), 0);
  });

  it("reads, probes and refused changes write nothing", async () => {
    const team = await f.team();
    let created: any;
    await causes(async () => (created = await f.host(team.owner.key, { type: "byoc" })), 1);
    await causes(async () => {
      await t.http.get(`/v1/hosts/${created.host.id}`, { key: team.member.key });
      await t.http.get("/v1/hosts", { key: t.adminKey });
      expect((await t.http.post(`/v1/hosts/${created.host.id}/probe`, { key: t.adminKey })).status).toBe(200);
      expect((await t.http.post(`/v1/hosts/${created.host.id}/tags`, { key: team.member.key, body: { tag: "nope" } })).status).toBe(403);
      expect((await t.http.delete(`/v1/hosts/${created.host.id}`, { key: team.member.key })).status).toBe(403);
    }, 0);
  });
});

describe("command events", () => {
  const deps = () => t.runtime.deps;

  it("command.queued, command.delivered, command.succeeded: each by its transition, once, carrying the command", async () => {
    const team = await f.team();
    const created = await f.host(team.owner.key, { type: "byoc", tags: ["ci"] });
    const hostId = created.host.id;
    let command: any;
    const queued = await causes(async () => {
      command = (await t.http.post(`/v1/hosts/${hostId}/commands`, { key: team.owner.key, body: { type: "deploy", payload: { v: 2 } } })).body;
    }, 1);
    expect(summary(queued)).toEqual([`command.queued ${hostId}`]);
    expect(queued[0]).toMatchObject({ team_id: team.team.id, host_id: hostId, data: command });

    const delivered = await causes(() => markDelivered(deps(), hostId, command.id, clock.now()), 1);
    expect(summary(delivered)).toEqual([`command.delivered ${hostId}`]);
    await causes(() => markDelivered(deps(), hostId, command.id, clock.now()), 0);

    const succeeded = await causes(() => recordResult(deps(), hostId, command.id, { ok: true, result: { ok: 1 } }, clock.now()), 1);
    expect(summary(succeeded)).toEqual([`command.succeeded ${hostId}`]);
    const read = (await t.http.get(`/v1/hosts/${hostId}/commands/${command.id}`, { key: team.owner.key })).body;
    expect(succeeded[0]!.data).toEqual(read);
    await causes(() => recordResult(deps(), hostId, command.id, { ok: false, error: "late" }, clock.now()), 0);
  });

  it("command.failed for a failure the agent reports; command.expired when the deadline passes, once, whoever notices", async () => {
    const created = await f.regularHost();
    const hostId = created.host.id;
    const send = async () => (await t.http.post(`/v1/hosts/${hostId}/commands`, { key: t.adminKey, body: { type: "ping", timeout_s: 30 } })).body;
    let failing: any;
    await causes(async () => (failing = await send()), 1);
    const failed = await causes(() => recordResult(deps(), hostId, failing.id, { ok: false, error: "disk full" }, clock.now()), 1);
    expect(summary(failed)).toEqual([`command.failed ${hostId}`]);
    expect(failed[0]!.data).toMatchObject({ status: "failed", error: "disk full" });

    let expiring: any;
    await causes(async () => (expiring = await send()), 1);
    clock.advance(31_000);
    const expired = await causes(async () => {
      await Promise.all([expireCommands(deps(), clock.now()), expireCommands(deps(), clock.now())]);
      await t.http.get(`/v1/hosts/${hostId}/commands/${expiring.id}`, { key: t.adminKey });
    }, 1);
    expect(summary(expired)).toEqual([`command.expired ${hostId}`]);
    expect(expired[0]!.data).toMatchObject({ id: expiring.id, status: "expired" });
  });

  it("a delivered command past its deadline: command.failed (result not received); a result arriving later: its own event", async () => {
    const created = await f.regularHost();
    const hostId = created.host.id;
    let command: any;
    await causes(async () => (command = (await t.http.post(`/v1/hosts/${hostId}/commands`, { key: t.adminKey, body: { type: "ping", timeout_s: 30 } })).body), 1);
    await causes(() => markDelivered(deps(), hostId, command.id, clock.now()), 1);
    clock.advance(31_000);
    const ended = await causes(() => expireCommands(deps(), clock.now()), 1);
    expect(summary(ended)).toEqual([`command.failed ${hostId}`]);
    expect(ended[0]!.data).toMatchObject({ status: "failed", error: expect.stringMatching(/result not received/) });
    const late = await causes(() => recordResult(deps(), hostId, command.id, { ok: true, result: { pong: true } }, clock.now()), 1);
    expect(summary(late)).toEqual([`command.succeeded ${hostId}`]);
    await causes(() => recordResult(deps(), hostId, command.id, { ok: true, result: { pong: true } }, clock.now()), 0);
  });
});

const specs = { address: "10.1.2.3:7070", arch: "x86_64", cpu_cores: 2, memory_mb: 2048, disk_gb: 20 };
