import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { CHANNEL_CLOSE, PROTOCOL_VERSION } from "@muster/contract";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import {
  HostAgent,
  MemoryCredentialStore,
  MusterClient,
  type HostAgentEvents,
  type HostAgentOptions,
  type StoredCredentials,
} from "../src/index.js";

/**
 * HostAgent's channel against a real control plane: heartbeats and commands
 * over the WebSocket, the HTTP fallback while it is down, and the fatal stop
 * when the control plane refuses the agent's protocol.
 */
let cp: ControlPlane;
let admin: MusterClient;
const agents: HostAgent[] = [];

beforeAll(async () => {
  cp = await startControlPlane({ MUSTER_HEARTBEAT_INTERVAL_S: "1", MUSTER_OFFLINE_AFTER_S: "5" });
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
});
afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.stop()));
  await cp?.stop();
});

const SPECS = { arch: "x86_64", cpu_cores: 2, memory_mb: 2048, disk_gb: 20, hostname: "chan", os: "Linux" };

/** An agent registered against the control plane, with every HTTP call and event recorded. */
async function enrolledAgent(options: Partial<HostAgentOptions> = {}) {
  const { host, registration_token } = await admin.hosts.create({ type: "regular" });
  const http: { path: string; at: number }[] = [];
  const events: { event: keyof HostAgentEvents; at: number; payload: unknown }[] = [];
  const agent = new HostAgent({
    controlPlane: cp.url,
    credentials: new MemoryCredentialStore(null),
    specs: () => SPECS,
    agentVersion: "7.7.7",
    fetch: (input, init) => (http.push({ path: new URL(String(input)).pathname, at: Date.now() }), fetch(input, init)),
    ...options,
  });
  agents.push(agent);
  for (const event of ["channelOpen", "channelClosed", "credentialsRefreshed", "stopped"] as const) {
    agent.on(event, (payload) => void events.push({ event, at: Date.now(), payload }));
  }
  await agent.register({ token: registration_token, address: "127.0.0.1:7070" });
  const opened = (count: number) => until(() => events.filter((e) => e.event === "channelOpen").length >= count);
  return { agent, hostId: host.id, http, events, opened };
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const beatsOverHttp = (http: { path: string; at: number }[], from: number, to = Infinity) =>
  http.filter((call) => call.path.endsWith("/heartbeat") && call.at >= from && call.at < to).length;

describe("heartbeats over the channel", () => {
  it("keeps the host online with no HTTP heartbeat while the channel is up, and records the agent's versions", async () => {
    const { agent, hostId, http, events, opened } = await enrolledAgent();
    await agent.start();
    await opened(1);
    const openedAt = events.find((e) => e.event === "channelOpen")!.at;
    await until(async () => (await admin.hosts.get(hostId)).status === "online");
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(beatsOverHttp(http, openedAt + 50)).toBe(0);
    const host = await admin.hosts.get(hostId);
    expect(host).toMatchObject({ status: "online", agent_version: "7.7.7", protocol_version: PROTOCOL_VERSION });
    expect(Date.now() - Date.parse(host.last_heartbeat_at!)).toBeLessThan(2_500);
    // One machine, one clock: the recorded skew is the beats' trip and nothing more.
    expect(Math.abs(host.clock_skew_ms!)).toBeLessThan(1_000);
  });

  it("falls back to HTTP heartbeats when the channel drops, and redials with backoff", async () => {
    const { agent, hostId, http, events, opened } = await enrolledAgent({ random: () => 0.99 });
    await agent.start();
    await opened(1);
    const [token] = [agent.credentials!.token];
    // Another channel of the same host takes over: the control plane closes the agent's (last one wins).
    const { WebSocket } = await import("ws");
    const intruder = new WebSocket(`${cp.url.replace("http", "ws")}/v1/hosts/${hostId}/channel`, { headers: { "x-host-token": token } });
    await once(intruder, "open");
    intruder.send(JSON.stringify({ type: "hello", protocol_version: 1, agent_version: "intruder" }));
    await until(() => events.some((e) => e.event === "channelClosed"));
    const closed = events.find((e) => e.event === "channelClosed")!;
    expect(closed.payload).toMatchObject({ code: CHANNEL_CLOSE.replaced });
    const retryInMs = (closed.payload as { retryInMs: number }).retryInMs;
    expect(retryInMs).toBeGreaterThanOrEqual(1_000);
    expect(retryInMs).toBeLessThanOrEqual(2_000);

    await opened(2);
    const reopenedAt = events.filter((e) => e.event === "channelOpen")[1]!.at;
    expect(reopenedAt - closed.at).toBeGreaterThanOrEqual(retryInMs - 50);
    expect(beatsOverHttp(http, closed.at, reopenedAt)).toBeGreaterThanOrEqual(1);
    expect((await admin.hosts.get(hostId)).status).toBe("online");
    intruder.terminate();
  });
});

describe("a channel that dies silently", () => {
  it("is dropped when its ping gets no pong, and the beat goes over HTTP", async () => {
    // A control plane whose channel welcomes the agent and then carries nothing back, not even pongs (a NAT dropped it).
    let httpBeats = 0;
    const server = createServer((request, response) => {
      if (request.url?.endsWith("/heartbeat")) httpBeats++;
      response.writeHead(204).end();
    });
    new WebSocketServer({ server, autoPong: false }).on("connection", (ws) => {
      ws.once("message", () => ws.send(JSON.stringify({ type: "welcome", host_id: HOST, heartbeat_interval_s: 1, min_protocol_version: 1 })));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new HostAgent({ controlPlane: url, credentials: new MemoryCredentialStore(credentialsFor(url)), agentVersion: "7.7.7" });
    agents.push(agent);
    const closed = new Promise<HostAgentEvents["channelClosed"]>((resolve) => agent.once("channelClosed", resolve));
    const opened = new Promise((resolve) => agent.once("channelOpen", resolve));
    await agent.start();
    await opened;
    const beatsWhileOpen = httpBeats;
    expect((await closed).code).toBe(1006);
    await until(() => httpBeats > beatsWhileOpen);
    await agent.stop();
    server.close();
  });
});

describe("commands", () => {
  it("runs the built-ins and the daemon's handlers, and reports failures", async () => {
    const { agent, hostId, events, opened } = await enrolledAgent();
    agent.onCommand("echo", (payload, command) => ({ echoed: payload, type: command.type }));
    agent.onCommand("explode", () => {
      throw new Error("the disk is on fire");
    });
    expect(() => agent.onCommand("ping", () => null)).toThrow(/built in/);
    await agent.start();
    await opened(1);

    const pong = await admin.hosts.commands.run(hostId, { type: "ping", timeout_s: 10 });
    expect(pong).toMatchObject({
      status: "succeeded",
      result: { pong: true, agent_version: "7.7.7", memory: { rss_bytes: expect.any(Number), heap_used_bytes: expect.any(Number) } },
    });
    const echo = await admin.hosts.commands.run(hostId, { type: "echo", payload: { n: 1 }, timeout_s: 10 });
    expect(echo).toMatchObject({ status: "succeeded", result: { echoed: { n: 1 }, type: "echo" } });
    expect(await admin.hosts.commands.run(hostId, { type: "explode", timeout_s: 10 })).toMatchObject({
      status: "failed",
      error: "the disk is on fire",
    });
    expect((await admin.hosts.commands.run(hostId, { type: "unknown", timeout_s: 10 })).error).toMatch(/no handler for command type 'unknown'/);

    const before = agent.credentials!.refresh_token;
    const refreshed = await admin.hosts.commands.run(hostId, { type: "refresh_credentials", timeout_s: 10 });
    expect(refreshed.status).toBe("succeeded");
    expect(agent.credentials!.refresh_token).not.toBe(before);
    expect(events.find((e) => e.event === "credentialsRefreshed")?.payload).toMatchObject({ reason: "command" });
    // The channel opened with the old token is replaced by one with the new token, and commands still flow.
    await opened(2);
    expect(await admin.hosts.commands.run(hostId, { type: "ping", timeout_s: 10 })).toMatchObject({ status: "succeeded" });
  });

  it("receives a command sent while it was offline once it connects", async () => {
    const { agent, hostId, opened } = await enrolledAgent();
    const sent = await admin.hosts.commands.send(hostId, { type: "ping", timeout_s: 30 });
    expect((await admin.hosts.commands.get(hostId, sent.id)).status).toBe("queued");
    await agent.start();
    await opened(1);
    expect(await admin.hosts.commands.wait(hostId, sent.id, { timeoutMs: 10_000 })).toMatchObject({ status: "succeeded" });
  });
});

const HOST = `host-${"a".repeat(26)}`;

/** Credentials for a fake control plane: a 1 s interval and a token that stays valid for the test. */
function credentialsFor(url: string): StoredCredentials {
  const now = new Date();
  const later = new Date(now.getTime() + 3_600_000).toISOString();
  const token = `x.${Buffer.from(JSON.stringify({ iat: Math.floor(now.getTime() / 1000), exp: Math.floor(now.getTime() / 1000) + 3600 })).toString("base64url")}.y`;
  return {
    version: 1, host_id: HOST, control_plane: url, token, token_expires_at: later, refresh_token: "r",
    refresh_token_expires_at: later, heartbeat_interval_s: 1, obtained_at: now.toISOString(),
  };
}

/** A control plane from the future: answers HTTP heartbeats as told and refuses every hello. */
async function futureControlPlane(heartbeatStatus: number) {
  const server: Server = createServer((request, response) => {
    if (heartbeatStatus === 204) return void response.writeHead(204).end();
    response.writeHead(heartbeatStatus, { "content-type": "application/json" });
    response.end(JSON.stringify({ error: { code: "upgrade_required", message: "this agent speaks protocol 1, but the control plane needs 2 or newer" } }));
  });
  let dials = 0;
  new WebSocketServer({ server }).on("connection", (ws) => {
    dials++;
    ws.on("message", () => {
      ws.send(JSON.stringify({ type: "rejected", code: "protocol_too_old", message: "needs protocol 2: see https://help.example/upgrade", min_protocol_version: 2, help_url: "https://help.example/upgrade" }));
      ws.close(CHANNEL_CLOSE.protocolTooOld, "protocol too old");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dials: () => dials, close: () => server.close() };
}

describe("a control plane that refuses the agent's protocol", () => {
  it("stops the agent on a channel rejection, with the help URL, and never redials", async () => {
    const { agent } = await enrolledAgent();
    const future = await futureControlPlane(204);
    const moved = new HostAgent({ controlPlane: future.url, credentials: new MemoryCredentialStore(agent.credentials), agentVersion: "7.7.7" });
    agents.push(moved);
    await moved.start();
    const exit = await moved.done;
    expect(exit).toMatchObject({ reason: "protocol_rejected", message: expect.stringContaining("https://help.example/upgrade") });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(future.dials()).toBe(1);
    future.close();
  });

  it("stops the agent when an HTTP heartbeat is refused with 426", async () => {
    const { agent } = await enrolledAgent();
    const future = await futureControlPlane(426);
    const moved = new HostAgent({ controlPlane: future.url, credentials: new MemoryCredentialStore(agent.credentials), channel: false });
    agents.push(moved);
    await moved.start();
    expect(await moved.done).toMatchObject({ reason: "protocol_rejected", message: expect.stringContaining("needs 2 or newer") });
    future.close();
  });
});
