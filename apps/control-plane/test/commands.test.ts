import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "./support/app.js";
import { eventually, startTwoPlanes, TestChannel, type TwoPlanes } from "./support/channel.js";
import { Factories } from "./support/factories.js";

/**
 * Commands: stored in the database, delivered over the host's channel from
 * whichever control plane holds it, queued while the host is offline, and
 * expired when their timeout passes.
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

describe("timeouts", () => {
  it("expires a queued command whose host never connects", async () => {
    const creds = await f.enrolledHost();
    const sent = await send(creds.host.id, { type: "ping", timeout_s: 1 });
    const expired = await until(creds.host.id, sent.body.id, "expired");
    expect(expired.completed_at).toBe(expired.expires_at);
  });

  it("expires a delivered command without a result, and ignores a result that comes later", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const sent = await send(creds.host.id, { type: "slow", timeout_s: 1 });
    await channel.next();
    channel.send({ type: "ack", id: sent.body.id });
    await until(creds.host.id, sent.body.id, "delivered");
    await until(creds.host.id, sent.body.id, "expired");
    channel.send({ type: "result", id: sent.body.id, ok: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await read(creds.host.id, sent.body.id)).status).toBe("expired");
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
