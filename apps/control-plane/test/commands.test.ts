import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESULT_NOT_RECEIVED } from "@muster/contract";
import { startTestApp, type TestApp } from "./support/app.js";
import { eventually, startTwoPlanes, TestChannel, type TwoPlanes } from "./support/channel.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

/**
 * Commands: stored in the database, delivered over the host's channel from
 * whichever control plane holds it, queued while the host is offline, ended by
 * their deadline (expired, or failed without a result), listed, and sent at
 * most once per Idempotency-Key.
 */
let a: TestApp;
let urlB: string;
let f: Factories;
let planes: TwoPlanes | undefined;

beforeAll(async () => {
  planes = await startTwoPlanes();
  ({ a, urlB } = planes);
  f = new Factories(a);
});

afterAll(() => planes?.close());

const send = (hostId: string, body: unknown, key = a.adminKey) => a.http.post(`/v1/hosts/${hostId}/commands`, { key, body });
const read = async (hostId: string, commandId: string, key = a.adminKey) => {
  const res = await a.http.get(`/v1/hosts/${hostId}/commands/${commandId}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};
const until = (hostId: string, commandId: string, status: string) =>
  eventually(async () => {
    const command = await read(hostId, commandId);
    return command.status === status ? command : undefined;
  });

describe("delivery", () => {
  it("reaches a host connected to the other control plane; ack and result update its state", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);

    const sent = await send(creds.host.id, { type: "deploy", payload: { image: "app:2" }, timeout_s: 60 });
    expect(sent.status).toBe(201);
    expect(sent.body).toMatchObject({ host_id: creds.host.id, type: "deploy", status: "queued", timeout_s: 60, result: null });

    const command = await channel.next();
    expect(command).toMatchObject({ type: "command", id: sent.body.id, command_type: "deploy", payload: { image: "app:2" } });
    channel.send({ type: "ack", id: sent.body.id });
    const delivered = await until(creds.host.id, sent.body.id, "delivered");
    expect(delivered.delivered_at).not.toBeNull();

    channel.send({ type: "result", id: sent.body.id, ok: true, result: { replicas: 3 } });
    const done = await until(creds.host.id, sent.body.id, "succeeded");
    expect(done).toMatchObject({ result: { replicas: 3 }, error: null });
    expect(done.completed_at).not.toBeNull();
    expect((await f.auditOf(creds.host.id, "host.command_sent"))[0]?.metadata).toMatchObject({ command_id: sent.body.id, type: "deploy" });
    channel.close();
  });

  it("records a failure the agent reports", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const sent = await send(creds.host.id, { type: "ping" });
    await channel.next();
    channel.send({ type: "result", id: sent.body.id, ok: false, error: "disk full" });
    expect(await until(creds.host.id, sent.body.id, "failed")).toMatchObject({ error: "disk full", result: null });
    channel.close();
  });

  it("waits for an offline host and is delivered when its channel returns", async () => {
    const creds = await f.enrolledHost();
    const sent = await send(creds.host.id, { type: "refresh_credentials", timeout_s: 60 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await read(creds.host.id, sent.body.id)).status).toBe("queued");

    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    expect(await channel.next()).toMatchObject({ type: "command", id: sent.body.id, command_type: "refresh_credentials" });
    channel.close();
  });

  it("sends an unacknowledged command again on the next channel", async () => {
    const creds = await f.enrolledHost();
    const first = await TestChannel.open(urlB, creds.host.id, creds.token);
    const sent = await send(creds.host.id, { type: "ping" });
    expect(await first.next()).toMatchObject({ id: sent.body.id });
    first.close();
    await first.closed;

    const second = await TestChannel.open(urlB, creds.host.id, creds.token);
    expect(await second.next()).toMatchObject({ id: sent.body.id });
    second.close();
  });
});

describe("deadlines", () => {
  it("expires a queued command whose host never connects", async () => {
    const creds = await f.enrolledHost();
    const sent = await send(creds.host.id, { type: "ping", timeout_s: 1 });
    const expired = await until(creds.host.id, sent.body.id, "expired");
    expect(expired).toMatchObject({ error: null, result: null, delivered_at: null });
    expect(expired.completed_at).toBe(expired.expires_at);
  });

  it("fails a delivered command whose result does not come in time ('result not received'), and a late result replaces it", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const sent = await send(creds.host.id, { type: "slow", timeout_s: 1 });
    await channel.next();
    channel.send({ type: "ack", id: sent.body.id });
    await until(creds.host.id, sent.body.id, "delivered");
    const failed = await until(creds.host.id, sent.body.id, "failed");
    expect(failed).toMatchObject({ error: RESULT_NOT_RECEIVED, result: null, completed_at: failed.expires_at });

    channel.send({ type: "result", id: sent.body.id, ok: true, result: { took_s: 2 } });
    expect(await channel.next()).toEqual({ type: "result_ack", id: sent.body.id });
    const late = await read(creds.host.id, sent.body.id);
    expect(late).toMatchObject({ status: "succeeded", result: { took_s: 2 }, error: null });
    expect(Date.parse(late.completed_at)).toBeGreaterThan(Date.parse(late.expires_at));
    channel.close();
  });

  it("replaces 'expired' by a result that proves the agent had the command after all (its ack was lost)", async () => {
    const creds = await f.enrolledHost();
    const sent = await send(creds.host.id, { type: "ping", timeout_s: 1 });
    await until(creds.host.id, sent.body.id, "expired");
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    channel.send({ type: "result", id: sent.body.id, ok: false, error: "no space left" });
    expect(await channel.next()).toEqual({ type: "result_ack", id: sent.body.id });
    expect(await read(creds.host.id, sent.body.id)).toMatchObject({ status: "failed", error: "no space left" });
    channel.close();
  });

  it("does not deliver a command that expired while the host was away", async () => {
    const creds = await f.enrolledHost();
    const stale = await send(creds.host.id, { type: "stale", timeout_s: 1 });
    await until(creds.host.id, stale.body.id, "expired");
    const fresh = await send(creds.host.id, { type: "fresh" });
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    expect(await channel.next()).toMatchObject({ id: fresh.body.id });
    channel.close();
  });
});

describe("listing", () => {
  const list = (hostId: string, query = "", key = a.adminKey) => a.http.get(`/v1/hosts/${hostId}/commands${query}`, { key });

  it("pages through a host's commands newest first, in the shape of every list", async () => {
    const creds = await f.enrolledHost();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await send(creds.host.id, { type: "ping" })).body.id);
    const other = await f.enrolledHost();
    await send(other.host.id, { type: "ping" });

    const seen: { id: string; created_at: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await list(creds.host.id, `?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      expect(Object.keys(page.body).sort()).toEqual(["items", "next_cursor"]);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items);
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen.map((c) => c.id).sort()).toEqual([...ids].sort());
    const times = seen.map((c) => Date.parse(c.created_at));
    expect(times).toEqual([...times].sort((x, y) => y - x));
  });

  it("filters by status, and shows a deadline passed as its ending", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const done = await send(creds.host.id, { type: "ping" });
    const waiting = await send(creds.host.id, { type: "ping" });
    const overdue = await send(creds.host.id, { type: "ping", timeout_s: 1 });
    channel.send({ type: "result", id: done.body.id, ok: true });
    await until(creds.host.id, done.body.id, "succeeded");
    channel.close();
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    const ofStatus = async (status: string) => (await list(creds.host.id, `?status=${status}`)).body.items.map((c: { id: string }) => c.id);
    expect(await ofStatus("succeeded")).toEqual([done.body.id]);
    expect(await ofStatus("queued")).toEqual([waiting.body.id]);
    expect(await ofStatus("expired")).toEqual([overdue.body.id]);
    expect(await ofStatus("failed")).toEqual([]);
  });

  it("is open to whoever may read the host, and refuses bad filters and cursors", async () => {
    const team = await f.team();
    const { host } = await f.host(team.owner.key, { type: "byoc", team_id: team.team.id });
    const sent = await send(host.id, { type: "ping" }, team.owner.key);
    expect((await list(host.id, "", team.member.key)).body.items.map((c: { id: string }) => c.id)).toEqual([sent.body.id]);
    expect((await list(host.id, "", (await f.team()).owner.key)).status).toBe(404);
    for (const query of ["?status=running", "?limit=0", "?limit=501", "?cursor=nonsense", "?type=ping"]) {
      const res = await list(host.id, query, team.owner.key);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
  });
});

describe("Idempotency-Key", () => {
  const sendWith = (hostId: string, key: string, body: unknown, apiKey = a.adminKey) =>
    a.http.post(`/v1/hosts/${hostId}/commands`, { key: apiKey, body, headers: { "idempotency-key": key } });
  const countOf = async (hostId: string) => (await a.http.get(`/v1/hosts/${hostId}/commands`, { key: a.adminKey })).body.items.length;

  it("answers a retry with the same key and body with the first answer, and queues one command", async () => {
    const creds = await f.enrolledHost();
    const body = { type: "deploy", payload: { image: "app:3", replicas: 2 }, timeout_s: 60 };
    const first = await sendWith(creds.host.id, "retry-1", body);
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    // The same request with its fields in another order is the same request.
    const again = await a.http.post(`/v1/hosts/${creds.host.id}/commands`, {
      key: a.adminKey,
      headers: { "idempotency-key": "retry-1", "content-type": "application/json" },
      rawBody: '{"timeout_s":60,"payload":{"replicas":2,"image":"app:3"},"type":"deploy"}',
    });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await countOf(creds.host.id)).toBe(1);
    expect(await f.auditOf(creds.host.id, "host.command_sent")).toHaveLength(1);
  });

  it("refuses the same key with another body, or for another host, with 409; another API key's key is its own", async () => {
    const creds = await f.enrolledHost();
    const other = await f.enrolledHost();
    expect((await sendWith(creds.host.id, "k-409", { type: "ping" })).status).toBe(201);
    const conflict = await sendWith(creds.host.id, "k-409", { type: "ping", timeout_s: 5 });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatchObject({ code: "conflict", message: expect.stringContaining("Idempotency-Key") });
    expect((await sendWith(other.host.id, "k-409", { type: "ping" })).status).toBe(409);

    const admin2 = await a.http.post("/v1/api-keys", { key: a.adminKey, body: { name: `second-${creds.host.id}` } });
    expect((await sendWith(creds.host.id, "k-409", { type: "ping" }, admin2.body.key)).headers.get("idempotent-replayed")).toBeNull();
    expect(await countOf(creds.host.id)).toBe(2);
    expect(await countOf(other.host.id)).toBe(0);
  });

  it("queues one command for concurrent requests with one key, on both processes", async () => {
    const creds = await f.enrolledHost();
    const apps = [a, planes!.b];
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        apps[i % 2]!.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: a.adminKey, body: { type: "ping" }, headers: { "idempotency-key": "race" } }),
      ),
    );
    expect(answers.map((res) => res.status)).toEqual(Array(8).fill(201));
    expect(new Set(answers.map((res) => res.body.id)).size).toBe(1);
    expect(answers.filter((res) => res.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    expect(await countOf(creds.host.id)).toBe(1);
  });

  it("refuses a key that is not printable ASCII or longer than 255 characters", async () => {
    const creds = await f.enrolledHost();
    for (const key of ["x".repeat(256), "caf\u00e9"]) {
      const res = await a.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: a.adminKey, body: { type: "ping" }, headers: { "idempotency-key": key } });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toContain("idempotency-key");
    }
    expect(await countOf(creds.host.id)).toBe(0);
  });

  it("forgets a key after 24 hours", async () => {
    const clock = new FakeClock();
    const app = await startTestApp({ clock });
    try {
      const other = new Factories(app);
      const { host } = await other.regularHost();
      const post = () => app.http.post(`/v1/hosts/${host.id}/commands`, { key: app.adminKey, body: { type: "ping" }, headers: { "idempotency-key": "daily" } });
      const first = await post();
      clock.advance(24 * 3600 * 1000 - 1_000);
      expect((await post()).body.id).toBe(first.body.id);
      clock.advance(1_000);
      const later = await post();
      expect(later.status).toBe(201);
      expect(later.body.id).not.toBe(first.body.id);
      expect(later.headers.get("idempotent-replayed")).toBeNull();
    } finally {
      await app.close();
    }
  });
});

describe("access", () => {
  it("lets team owners send, refuses members (403) and other teams (404), validates the body", async () => {
    const team = await f.team();
    const other = await f.team();
    const { host } = await f.host(team.owner.key, { type: "byoc", team_id: team.team.id });
    const sent = await send(host.id, { type: "ping" }, team.owner.key);
    expect(sent.status).toBe(201);
    expect((await send(host.id, { type: "ping" }, team.member.key)).status).toBe(403);
    expect((await read(host.id, sent.body.id, team.member.key)).id).toBe(sent.body.id);
    expect((await send(host.id, { type: "ping" }, other.owner.key)).status).toBe(404);
    expect((await a.http.get(`/v1/hosts/${host.id}/commands/${sent.body.id}`, { key: other.owner.key })).status).toBe(404);

    const invalid = await send(host.id, { type: "Not A Type" }, team.owner.key);
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.message).toContain("type");
    expect((await send(host.id, { type: "ping", timeout_s: 0 }, team.owner.key)).status).toBe(400);
    expect((await send(host.id, { type: "ping", extra: 1 }, team.owner.key)).status).toBe(400);
  });

  it("answers 404 for a command of another host", async () => {
    const one = await f.enrolledHost();
    const two = await f.enrolledHost();
    const sent = await send(one.host.id, { type: "ping" });
    expect((await a.http.get(`/v1/hosts/${two.host.id}/commands/${sent.body.id}`, { key: a.adminKey })).status).toBe(404);
  });

  it("counts commands by state in /metrics", async () => {
    const creds = await f.enrolledHost();
    await send(creds.host.id, { type: "ping" });
    const res = await a.http.get("/metrics");
    expect(res.body as string).toMatch(/muster_host_commands\{status="queued"} [1-9]/);
  });
});
