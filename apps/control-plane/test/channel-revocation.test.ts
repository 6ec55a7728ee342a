import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANNEL_CLOSE, type ControlPlaneMessage } from "@muster/contract";
import { credentialStateKey } from "../src/services/kv-keys.js";
import type { TestApp } from "./support/app.js";
import { eventually, startTwoPlanes, TestChannel, type TwoPlanes } from "./support/channel.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { keyPair, makeCsr, refreshProof } from "./support/pki.js";

/**
 * Revocation reaches open channels: a channel whose host's credentials died
 * (registered again, deleted, a reused refresh token) is closed by whichever
 * control plane holds it within a second, and carries nothing in between:
 * no command down, no ack or result up. The sockets here say hello and then
 * only ack, never beat, so nothing but the revocation itself can close them.
 */
let a: TestApp;
let b: TestApp;
let urlA: string;
let f: Factories;
let planes: TwoPlanes | undefined;

beforeAll(async () => {
  planes = await startTwoPlanes();
  ({ a, b, urlA } = planes);
  f = new Factories(a);
});

afterAll(() => planes?.close());

const send = (app: TestApp, hostId: string, type = "deploy") =>
  app.http.post(`/v1/hosts/${hostId}/commands`, { key: a.adminKey, body: { type, payload: { secret: "s3cret" }, timeout_s: 60 } });
const statusOf = async (hostId: string, commandId: string) =>
  (await a.http.get(`/v1/hosts/${hostId}/commands/${commandId}`, { key: a.adminKey })).body.status as string;

/** An enrolled host whose channel (on `url`) has received and acknowledged one command. */
async function channelWithDeliveredCommand(url: string) {
  const creds = await f.enrolledHost();
  const channel = await TestChannel.open(url, creds.host.id, creds.token);
  const earlier = (await send(a, creds.host.id)).body.id as string;
  expect(await channel.next()).toMatchObject({ type: "command", id: earlier });
  channel.send({ type: "ack", id: earlier });
  await eventually(async () => ((await statusOf(creds.host.id, earlier)) === "delivered" ? true : undefined));
  const received: ControlPlaneMessage[] = [];
  channel.ws.on("message", (data) => received.push(JSON.parse(data.toString()) as ControlPlaneMessage));
  return { creds, channel, earlier, received };
}

async function registerAgain(app: TestApp, hostId: string) {
  const token = await app.http.post(`/v1/hosts/${hostId}/token`, { key: a.adminKey });
  expect(token.status).toBe(201);
  const started = Date.now();
  const res = await app.http.post("/v1/hosts/register", { body: { token: token.body.registration_token, ...machineSpecs } });
  expect(res.status).toBe(201);
  return started;
}

describe("a host registered again", () => {
  it("has its old channel closed with 4401 within 1 s, though it sends nothing; a later command never reaches it", async () => {
    const { creds, channel, earlier, received } = await channelWithDeliveredCommand(urlA);
    const started = await registerAgain(a, creds.host.id);
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.unauthorized);
    expect(Date.now() - started).toBeLessThan(1_000);

    const later = (await send(a, creds.host.id)).body.id as string;
    expect(received.filter((message) => message.type === "command")).toEqual([]);
    expect(await statusOf(creds.host.id, earlier)).toBe("delivered");
    expect(await statusOf(creds.host.id, later)).toBe("queued");
  });

  it("the same across two control planes: the channel on one, the registration on the other", async () => {
    const { creds, channel, received } = await channelWithDeliveredCommand(urlA);
    const started = await registerAgain(b, creds.host.id);
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.unauthorized);
    expect(Date.now() - started).toBeLessThan(1_000);
    const later = (await send(b, creds.host.id)).body.id as string;
    expect(received.filter((message) => message.type === "command")).toEqual([]);
    expect(await statusOf(creds.host.id, later)).toBe("queued");
  });
});

describe("a deleted host", () => {
  it("has its channel closed with 4404 within 1 s, by the control plane holding it", async () => {
    const { creds, channel } = await channelWithDeliveredCommand(urlA);
    const started = Date.now();
    expect((await b.http.delete(`/v1/hosts/${creds.host.id}`, { key: a.adminKey })).status).toBe(204);
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.hostDeleted);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe("a reused refresh token", () => {
  it("closes the channel with 4401", async () => {
    const keys = await keyPair();
    const { registration_token } = await f.regularHost();
    const creds = await f.register(registration_token, { csr: await makeCsr(keys) });
    const channel = await TestChannel.open(urlA, creds.host.id, creds.token);
    const refresh = async () =>
      a.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token, proof: await refreshProof(keys, creds.refresh_token) } });
    expect((await refresh()).status).toBe(200);
    // The fresh token's family is live, but the channel was opened with the old one: still good until the reuse.
    expect((await refresh()).status).toBe(401);
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.unauthorized);
  });
});

describe("a process that missed the announcement", () => {
  it("still hands no command to the channel and takes no result from it: the state is read before each", async () => {
    const { creds, channel, earlier, received } = await channelWithDeliveredCommand(urlA);
    // Revoked as a lost announcement leaves it: the KV store says so, no process was told.
    await a.stores.kv.set(credentialStateKey(creds.host.id), "!none");
    channel.send({ type: "result", id: earlier, ok: true, result: { stolen: true } });
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.unauthorized);
    expect(await statusOf(creds.host.id, earlier)).toBe("delivered");
    expect(received.filter((message) => message.type === "command")).toEqual([]);
  });

  it("refuses to deliver a command to it", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlA, creds.host.id, creds.token);
    const received: ControlPlaneMessage[] = [];
    channel.ws.on("message", (data) => received.push(JSON.parse(data.toString()) as ControlPlaneMessage));
    await a.stores.kv.set(credentialStateKey(creds.host.id), "!deleted");
    const command = (await send(a, creds.host.id)).body.id as string;
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.hostDeleted);
    expect(received).toEqual([]);
    expect(await statusOf(creds.host.id, command)).toBe("queued");
  });
});
