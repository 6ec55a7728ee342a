import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { TestApp } from "./support/app.js";
import { eventually, startTwoPlanes, TestChannel, type TwoPlanes } from "./support/channel.js";
import { Factories } from "./support/factories.js";

/**
 * Results and redelivery: a result is stored once (the first wins, the same
 * again changes nothing, another is refused and logged) whichever process or
 * path brings it, and acknowledged to agents of protocol 3; every unfinished
 * command goes out again on each new channel, on either process.
 */
let a: TestApp;
let b: TestApp;
let urlA: string;
let urlB: string;
let f: Factories;
let planes: TwoPlanes | undefined;

beforeAll(async () => {
  planes = await startTwoPlanes();
  ({ a, b, urlA, urlB } = planes);
  f = new Factories(a);
});

afterAll(() => planes?.close());

const send = async (hostId: string, body: Record<string, unknown> = { type: "ping" }): Promise<string> => {
  const res = await a.http.post(`/v1/hosts/${hostId}/commands`, { key: a.adminKey, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
};
const read = async (hostId: string, commandId: string) => (await a.http.get(`/v1/hosts/${hostId}/commands/${commandId}`, { key: a.adminKey })).body;
const until = (hostId: string, commandId: string, status: string) =>
  eventually(async () => {
    const command = await read(hostId, commandId);
    return command.status === status ? command : undefined;
  });
const postResult = (app: TestApp, hostId: string, commandId: string, body: unknown, hostToken: string) =>
  app.http.post(`/v1/hosts/${hostId}/commands/${commandId}/result`, { hostToken, body });

describe("storing a result", () => {
  it("keeps the first result over the channel; the same again is acknowledged and changes nothing; another is refused and logged", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const id = await send(creds.host.id);
    await channel.next();
    channel.send({ type: "result", id, ok: true, result: { n: 1 } });
    expect(await channel.next()).toEqual({ type: "result_ack", id });
    const stored = await read(creds.host.id, id);
    expect(stored).toMatchObject({ status: "succeeded", result: { n: 1 } });

    const warn = vi.spyOn(b.runtime.deps.logger, "warn");
    channel.send({ type: "result", id, ok: true, result: { n: 1 } });
    expect(await channel.next()).toEqual({ type: "result_ack", id });
    expect(warn).not.toHaveBeenCalled();
    channel.send({ type: "result", id, ok: false, error: "ran twice?" });
    expect(await channel.next()).toEqual({ type: "result_ack", id });
    expect(await read(creds.host.id, id)).toEqual(stored);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ command_id: id, refused_status: "failed" }), expect.stringContaining("refused"));
    warn.mockRestore();
    channel.close();
  });

  it("takes results over HTTP with the host token: 204 stored, 204 again, 409 for another result, 404 for no such command", async () => {
    const creds = await f.enrolledHost();
    const id = await send(creds.host.id);
    expect((await postResult(b, creds.host.id, id, { ok: false, error: "disk full" }, creds.token)).status).toBe(204);
    expect(await read(creds.host.id, id)).toMatchObject({ status: "failed", error: "disk full" });
    expect((await postResult(a, creds.host.id, id, { ok: false, error: "disk full" }, creds.token)).status).toBe(204);
    const conflict = await postResult(a, creds.host.id, id, { ok: true }, creds.token);
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe("conflict");
    expect(await read(creds.host.id, id)).toMatchObject({ status: "failed", error: "disk full" });

    const other = await f.enrolledHost();
    const theirs = await send(other.host.id);
    // Another host's command is no command of this host; another host's path is not this token's.
    expect((await postResult(a, creds.host.id, theirs, { ok: true }, creds.token)).status).toBe(404);
    expect((await postResult(a, other.host.id, theirs, { ok: true }, creds.token)).status).toBe(403);
    expect((await read(other.host.id, theirs)).status).toBe("queued");
  });

  it("refuses results without a host token, with an API key, with a bad body, and for a deleted host", async () => {
    const creds = await f.enrolledHost();
    const id = await send(creds.host.id);
    const path = `/v1/hosts/${creds.host.id}/commands/${id}/result`;
    expect((await a.http.post(path, { body: { ok: true } })).status).toBe(401);
    expect((await a.http.post(path, { key: a.adminKey, body: { ok: true } })).status).toBe(401);
    for (const body of [{}, { ok: "yes" }, { ok: true, extra: 1 }, { ok: false, error: "x".repeat(4097) }]) {
      const res = await a.http.post(path, { hostToken: creds.token, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await read(creds.host.id, id)).status).toBe("queued");
    expect((await a.http.delete(`/v1/hosts/${creds.host.id}`, { key: a.adminKey })).status).toBe(204);
    expect((await a.http.post(path, { hostToken: creds.token, body: { ok: true } })).status).toBe(404);
  });
});

describe("redelivery when a channel opens", () => {
  it("sends every queued command, and every delivered one without a result, oldest first, once per channel, on either process", async () => {
    const creds = await f.enrolledHost();
    const first = await TestChannel.open(urlA, creds.host.id, creds.token);
    const delivered = await send(creds.host.id, { type: "deploy" });
    // Apart in time, so "oldest first" is decided by creation alone.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const unacked = await send(creds.host.id, { type: "drain" });
    const finished = await send(creds.host.id, { type: "ping" });
    for (let i = 0; i < 3; i++) await first.next();
    first.send({ type: "ack", id: delivered });
    first.send({ type: "result", id: finished, ok: true });
    await until(creds.host.id, delivered, "delivered");
    await until(creds.host.id, finished, "succeeded");
    first.close();
    await first.closed;

    const second = await TestChannel.open(urlB, creds.host.id, creds.token);
    const resent = [await second.next(), await second.next()];
    expect(resent).toMatchObject([{ type: "command", id: delivered, command_type: "deploy" }, { type: "command", id: unacked, command_type: "drain" }]);
    expect(await second.quietFor(300)).toBe(true);
    // A new command is sent alone: what this channel already carried does not go again.
    const later = await send(creds.host.id);
    expect(await second.next()).toMatchObject({ id: later });
    expect(await second.quietFor(300)).toBe(true);

    // A result for a command another process delivered is stored here and acknowledged.
    second.send({ type: "result", id: delivered, ok: true, result: { version: 3 } });
    expect(await second.next()).toEqual({ type: "result_ack", id: delivered });
    expect(await read(creds.host.id, delivered)).toMatchObject({ status: "succeeded", result: { version: 3 } });
    second.close();
  });

  it("sends a backlog longer than one delivery batch in one pass", async () => {
    const creds = await f.enrolledHost();
    const ids = [];
    for (let i = 0; i < 105; i++) ids.push(await send(creds.host.id));
    const channel = await TestChannel.open(urlB, creds.host.id, creds.token);
    const got = [];
    for (let i = 0; i < ids.length; i++) got.push(((await channel.next()) as { id: string }).id);
    expect(got.sort()).toEqual([...ids].sort());
    channel.close();
  });

  it("to an agent older than protocol 3: no result_ack, and delivered commands are not sent again (it would run them again after a restart)", async () => {
    const creds = await f.enrolledHost();
    const old = await TestChannel.open(urlB, creds.host.id, creds.token, 2);
    const done = await send(creds.host.id);
    const delivered = await send(creds.host.id);
    await old.next();
    await old.next();
    old.send({ type: "result", id: done, ok: true });
    old.send({ type: "ack", id: delivered });
    await until(creds.host.id, done, "succeeded");
    await until(creds.host.id, delivered, "delivered");
    expect(await old.quietFor(300)).toBe(true);
    old.close();
    await old.closed;

    const queued = await send(creds.host.id);
    const again = await TestChannel.open(urlA, creds.host.id, creds.token, 2);
    expect(await again.next()).toMatchObject({ type: "command", id: queued });
    expect(await again.quietFor(300)).toBe(true);
    again.close();
  });
});
