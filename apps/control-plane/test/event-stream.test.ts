import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Host, MusterEvent } from "@muster/contract";
import { readyHead, recordEvents } from "../src/services/events.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { EventStream, quietFor } from "./support/events.js";
import { Factories, type TeamFixture } from "./support/factories.js";

/** GET /v1/events: where a stream starts, who sees what, filters, resuming, 410, keep-alive, and streams that must end. */
let t: TestApp;
let f: Factories;
const KEEPALIVE_MS = 300;

beforeAll(async () => {
  t = await startTestApp({ startLoops: true, config: { eventsKeepAliveMs: KEEPALIVE_MS } });
  f = new Factories(t);
});
afterAll(() => t.close());

const ids = (events: MusterEvent[]) => events.map((event) => `${event.type} ${event.host_id}`);
const head = async () => String(await readyHead(t.runtime.deps.db));

describe("where a stream starts", () => {
  it("without a position: at the log's head, which it names first, then only what happens after", async () => {
    await f.regularHost();
    const start = await head();
    const stream = await EventStream.open(t, { key: t.adminKey });
    await stream.until(() => stream.lastId !== null, 2_000, () => "the position frame");
    expect(stream.lastId).toBe(start);
    await quietFor(stream, 200);
    const later = await f.regularHost();
    expect(ids(await stream.waitFor(1))).toEqual([`host.created ${later.host.id}`]);
    expect(stream.lastId).toBe(stream.events[0]!.id);
    await stream.close();
  });

  it("from now means from when it opened: an event committed before is not sent, even one this process's hub has not read yet", async () => {
    // A process that reads the log only when a commit is announced (its safety-net read an hour apart).
    const other = await startTestApp({ startLoops: true, stores: t.stores, config: { eventsPollMs: 3_600_000 } });
    try {
      const unannounced = "host-committedbeforethestreamopened";
      await t.stores.database.db.transaction((tx) =>
        recordEvents(tx, t.runtime.deps, [{ type: "host.created", teamId: null, hostId: unannounced, tags: [], data: { id: unannounced } as Host }]),
      );
      const stream = await EventStream.open(other, { key: t.adminKey, query: "type=host.created" });
      const later = await f.regularHost();
      expect(ids(await stream.waitFor(1, 5_000))).toEqual([`host.created ${later.host.id}`]);
      await quietFor(stream, 200);
      await stream.close();
    } finally {
      await other.close();
    }
  });

  it("sends each event as `id:` (its ID) and `data:` (the event), with the SSE headers", async () => {
    const response = await EventStream.request(t, { key: t.adminKey });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("cache-control")).toContain("no-cache");
    expect(response.headers.get("x-request-id")).toBeTruthy();
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    expect(text).toMatch(/^retry: \d+\nid: \d+\ndata:\n\n$/);
    const created = await f.regularHost();
    while (!text.includes("host.created")) text += decoder.decode((await reader.read()).value);
    const frame = text.split("\n\n").find((part) => part.includes("host.created"))!;
    const [idLine, dataLine] = frame.split("\n");
    const event = JSON.parse(dataLine!.slice("data: ".length)) as MusterEvent;
    expect(idLine).toBe(`id: ${event.id}`);
    expect(Object.keys(event)).toEqual(["id", "type", "occurred_at", "team_id", "host_id", "data"]);
    expect(event.data).toEqual(created.host);
    await reader.cancel();
  });
});

describe("scope", () => {
  let a: TeamFixture;
  let b: TeamFixture;
  beforeAll(async () => {
    [a, b] = [await f.team(), await f.team()];
  });

  it("a team's keys see their team's events only, members as owners; admins see every team's and the regular hosts'", async () => {
    const streams = {
      ownerA: await EventStream.open(t, { key: a.owner.key }),
      memberA: await EventStream.open(t, { key: a.member.key }),
      ownerB: await EventStream.open(t, { key: b.owner.key }),
      admin: await EventStream.open(t, { key: t.adminKey }),
    };
    const hostA = await f.host(a.owner.key, { type: "byoc" });
    const hostB = await f.host(b.owner.key, { type: "byoc" });
    const regular = await f.regularHost();
    const command = await t.http.post(`/v1/hosts/${hostA.host.id}/commands`, { key: a.owner.key, body: { type: "ping" } });
    expect(command.status).toBe(201);
    // Another team's host named in the filter does not widen the scope.
    const snoopById = await EventStream.open(t, { key: b.owner.key, query: `host_id=${hostA.host.id}` });
    await t.http.post(`/v1/hosts/${hostA.host.id}/tags`, { key: a.owner.key, body: { tag: "seen-by-a" } });

    const forA = [`host.created ${hostA.host.id}`, `command.queued ${hostA.host.id}`, `host.tags_changed ${hostA.host.id}`];
    expect(ids(await streams.ownerA.waitFor(3))).toEqual(forA);
    expect(ids(await streams.memberA.waitFor(3))).toEqual(forA);
    expect(ids(await streams.ownerB.waitFor(1))).toEqual([`host.created ${hostB.host.id}`]);
    expect(ids(await streams.admin.waitFor(5))).toEqual([
      `host.created ${hostA.host.id}`,
      `host.created ${hostB.host.id}`,
      `host.created ${regular.host.id}`,
      `command.queued ${hostA.host.id}`,
      `host.tags_changed ${hostA.host.id}`,
    ]);
    await quietFor(streams.ownerA, 200);
    expect(ids(streams.ownerB.events)).toEqual([`host.created ${hostB.host.id}`]);
    expect(snoopById.events).toEqual([]);
    for (const stream of [...Object.values(streams), snoopById]) await stream.close();
  });

  it("a team's key resuming from before another team's events still gets only its own", async () => {
    const from = await head();
    await f.host(b.owner.key, { type: "byoc" });
    const mine = await f.host(a.owner.key, { type: "byoc" });
    const stream = await EventStream.open(t, { key: a.owner.key, lastEventId: from });
    expect(ids(await stream.waitFor(1))).toEqual([`host.created ${mine.host.id}`]);
    await quietFor(stream, 200);
    await stream.close();
  });
});

describe("filters", () => {
  it("type is repeatable and takes host.* / command.*; host_id and tag narrow further", async () => {
    const from = await head();
    const tagged = await f.regularHost({ tags: ["rack-7"] });
    const other = await f.regularHost();
    await t.http.post(`/v1/hosts/${other.host.id}/commands`, { key: t.adminKey, body: { type: "ping" } });
    await t.http.post(`/v1/hosts/${tagged.host.id}/commands`, { key: t.adminKey, body: { type: "ping" } });
    await t.http.delete(`/v1/hosts/${other.host.id}`, { key: t.adminKey });
    const open = (query: string) => EventStream.open(t, { key: t.adminKey, query: `after=${from}&${query}` });

    const created = await open("type=host.created");
    expect(ids(await created.waitFor(2))).toEqual([`host.created ${tagged.host.id}`, `host.created ${other.host.id}`]);
    const two = await open("type=host.deleted&type=command.*");
    expect(ids(await two.waitFor(3))).toEqual([`command.queued ${other.host.id}`, `command.queued ${tagged.host.id}`, `host.deleted ${other.host.id}`]);
    const hosts = await open("type=host.*");
    expect(ids(await hosts.waitFor(3))).toEqual([`host.created ${tagged.host.id}`, `host.created ${other.host.id}`, `host.deleted ${other.host.id}`]);
    const byHost = await open(`host_id=${other.host.id}&type=command.queued`);
    expect(ids(await byHost.waitFor(1))).toEqual([`command.queued ${other.host.id}`]);
    const byTag = await open("tag=rack-7");
    expect(ids(await byTag.waitFor(2))).toEqual([`host.created ${tagged.host.id}`, `command.queued ${tagged.host.id}`]);
    for (const stream of [created, two, hosts, byHost, byTag]) await quietFor(stream, 100);
    expect([created, two, hosts, byHost, byTag].map((stream) => stream.events.length)).toEqual([2, 3, 3, 1, 2]);
    for (const stream of [created, two, hosts, byHost, byTag]) await stream.close();
  });

  it("refuses an unknown type, a malformed host ID or tag, and unknown parameters with 400", async () => {
    for (const query of ["type=host.exploded", "type=host", "type=*", "host_id=nope", "tag=Not%20a%20tag", "since=1", "after=-1", "after=1.5"]) {
      const response = await EventStream.request(t, { key: t.adminKey, query });
      expect(response.status, query).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
    }
    const badHeader = await EventStream.request(t, { key: t.adminKey, lastEventId: "abc" });
    expect(badHeader.status).toBe(400);
  });

  it("refuses a missing or wrong credential with 401 before reading anything", async () => {
    expect((await t.runtime.app.request("/v1/events")).status).toBe(401);
    expect((await EventStream.request(t, { key: "msk_nope" })).status).toBe(401);
  });
});

describe("resuming", () => {
  it("after a killed connection, with Last-Event-ID: exactly the events missed, in order, none twice", async () => {
    const first = await EventStream.open(t, { key: t.adminKey, query: "type=host.created" });
    const before = [await f.regularHost(), await f.regularHost()];
    await first.waitFor(2);
    const last = first.lastId!;
    await first.close();
    const missed = [await f.regularHost(), await f.regularHost(), await f.regularHost()];

    const resumed = await EventStream.open(t, { key: t.adminKey, query: "type=host.created", lastEventId: last });
    const after = [await f.regularHost()];
    const got = await resumed.waitFor(4);
    expect(ids(got)).toEqual([...missed, ...after].map((host) => `host.created ${host.host.id}`));
    expect(got.every((event) => BigInt(event.id) > BigInt(last))).toBe(true);
    expect(new Set(got.map((event) => event.id)).size).toBe(4);
    await quietFor(resumed, 200);
    await resumed.close();
    expect(before).toHaveLength(2);
  });

  it("?after= resumes the same way, and Last-Event-ID wins over it (a reconnecting EventSource sends both)", async () => {
    const from = await head();
    const one = await f.regularHost();
    const mid = await head();
    const two = await f.regularHost();
    const byQuery = await EventStream.open(t, { key: t.adminKey, query: `after=${from}&type=host.created` });
    expect(ids(await byQuery.waitFor(2))).toEqual([`host.created ${one.host.id}`, `host.created ${two.host.id}`]);
    const both = await EventStream.open(t, { key: t.adminKey, query: `after=${from}&type=host.created`, lastEventId: mid });
    expect(ids(await both.waitFor(1))).toEqual([`host.created ${two.host.id}`]);
    await quietFor(both, 200);
    await byQuery.close();
    await both.close();
  });

  it("from before this process started (a restart, another process): pages from the database, then live, nothing lost at the handover", async () => {
    const from = await head();
    const filler = Array.from({ length: 2_500 }, (_, i) => fakeHostEvent(`host-fill${String(i).padStart(21, "0")}`));
    await t.runtime.deps.db.transaction((tx) => recordEvents(tx, t.runtime.deps, filler));
    const restarted = await startTestApp({ startLoops: true, stores: t.stores });
    try {
      const stream = await EventStream.open(restarted, { key: t.adminKey, query: "type=host.created", lastEventId: from });
      const live = await f.regularHost();
      const got = await stream.waitFor(2_501, 20_000);
      expect(got.map((event) => event.host_id)).toEqual([...filler.map((event) => event.hostId), live.host.id]);
      await quietFor(stream, 200);
      await stream.close();
    } finally {
      await restarted.close();
    }
  });
});

describe("another control plane", () => {
  it("a change made through one process reaches streams on another by its announcement on the KV store (the safety-net read an hour apart)", async () => {
    const other = await startTestApp({ startLoops: true, stores: t.stores, config: { eventsPollMs: 3_600_000 } });
    try {
      const stream = await EventStream.open(other, { key: t.adminKey, query: "type=host.created" });
      const made = await f.regularHost();
      expect((await stream.waitFor(1, 5_000)).map((event) => event.host_id)).toEqual([made.host.id]);
      await stream.close();
    } finally {
      await other.close();
    }
  });
});

describe("410 gone", () => {
  it("an ID older than the retention, or one this log never issued, gets 410 with the oldest ID still held", async () => {
    const clock = new FakeClock(Date.now());
    const local = await startTestApp({ clock, startLoops: true });
    try {
      const lf = new Factories(local);
      await lf.regularHost();
      const old = String(await readyHead(local.runtime.deps.db));
      await lf.regularHost();
      const edge = String(await readyHead(local.runtime.deps.db));
      clock.advance(local.config.eventsRetentionS * 1000 + 1000);
      const kept = await lf.regularHost();
      expect(await local.runtime.pruner.pruneOnce()).toBeGreaterThanOrEqual(2);
      const oldest = String(await readyHead(local.runtime.deps.db));

      const gone = await EventStream.request(local, { key: local.adminKey, lastEventId: old });
      expect(gone.status).toBe(410);
      const body = (await gone.json()) as { error: { code: string; message: string; oldest_id: string | null } };
      expect(body.error).toMatchObject({ code: "gone", oldest_id: oldest });
      expect(body.error.message).toMatch(/resync/);

      // The last pruned event is still a good place to resume: nothing after it was pruned.
      const fromEdge = await EventStream.open(local, { key: local.adminKey, lastEventId: edge });
      expect(ids(await fromEdge.waitFor(1))).toEqual([`host.created ${kept.host.id}`]);
      await fromEdge.close();

      const future = await EventStream.request(local, { key: local.adminKey, query: `after=${BigInt(oldest) + 10n ** 12n}` });
      expect(future.status).toBe(410);
      expect(((await future.json()) as { error: { oldest_id: string } }).error.oldest_id).toBe(oldest);
    } finally {
      await local.close();
    }
  });
});

describe("streams that must end or keep alive", () => {
  it("an idle stream gets a keep-alive comment every interval", async () => {
    const stream = await EventStream.open(t, { key: t.adminKey, query: "host_id=host-aaaaaaaaaaaaaaaaaaaaaaaaaa" });
    await stream.until(() => stream.comments.filter((c) => c === "keep-alive").length >= 2, KEEPALIVE_MS * 4, () => "two keep-alives");
    await stream.close();
  });

  it("a stream ends within a keep-alive interval once its API key is revoked or its user leaves the team", async () => {
    const team = await f.team();
    const keyRes = await t.http.post("/v1/api-keys", { key: team.owner.key, body: { name: "watcher" } });
    const revoked = await EventStream.open(t, { key: keyRes.body.key });
    const left = await EventStream.open(t, { key: team.member.key });
    expect((await t.http.delete(`/v1/api-keys/${keyRes.body.api_key.id}`, { key: team.owner.key })).status).toBe(204);
    expect((await t.http.delete(`/v1/teams/${team.team.id}/members/${team.member.user.id}`, { key: team.owner.key })).status).toBe(204);
    await Promise.race([
      Promise.all([revoked.ended, left.ended]),
      new Promise((_, reject) => setTimeout(() => reject(new Error("streams still open")), KEEPALIVE_MS * 4)),
    ]);
    expect(revoked.comments).toContain("the API key is no longer live");
    expect((await EventStream.request(t, { key: keyRes.body.key })).status).toBe(401);
  });

  it("a client that stops reading is dropped once it is 4 MiB behind, and catches up from the log when it comes back", async () => {
    const response = await EventStream.request(t, { key: t.adminKey, query: "type=host.created" });
    const from = await head();
    const fat = Array.from({ length: 80 }, (_, i) => fakeHostEvent(`host-fat${String(i).padStart(22, "0")}`, "x".repeat(64 * 1024)));
    await t.runtime.deps.db.transaction((tx) => recordEvents(tx, t.runtime.deps, fat));
    const metric = async () => (await t.runtime.deps.metrics.registry.getSingleMetricAsString("muster_event_streams_ended_total")).match(/reason="too_slow"} (\d+)/)?.[1];
    const deadline = Date.now() + 5_000;
    while ((await metric()) === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await metric()).toBe("1");
    const slow = new EventStream(response);
    await slow.ended;
    expect(slow.comments.at(-1)).toMatch(/too far behind/);
    expect(slow.events.length).toBeLessThan(80);

    const back = await EventStream.open(t, { key: t.adminKey, query: "type=host.created", lastEventId: slow.lastId ?? from });
    await back.waitFor(80 - slow.events.length, 10_000);
    expect([...slow.events, ...back.events].map((event) => event.host_id)).toEqual(fat.map((event) => event.hostId));
    await back.close();
  });
});

function fakeHostEvent(hostId: string, padding = "") {
  return { type: "host.created" as const, teamId: null, hostId, tags: [], data: { id: hostId, provider: padding } as unknown as Host };
}
