import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createHttpServer } from "../../src/http/server.js";
import { PROTOCOL_VERSION, type ControlPlaneMessage } from "@muster/contract";
import WebSocket from "ws";
import type { Config } from "../../src/config.js";
import type { CallResult } from "./http.js";
import { startTestApp, type TestApp } from "./app.js";

/** Serves a test app on a loopback port through the real server (heartbeat lane included), its agent channels attached, as main.ts does. */
export async function listen(app: TestApp): Promise<{ baseUrl: string; close(): Promise<void> }> {
  const server = createHttpServer(app.runtime.app.fetch, app.runtime.deps) as Server;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  app.runtime.channels.attach(server);
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface TwoPlanes {
  a: TestApp;
  b: TestApp;
  urlA: string;
  urlB: string;
  close(): Promise<void>;
}

/** Two control planes on shared stores (`config` for the first), each served on a loopback port with its loops running. */
export async function startTwoPlanes(config: Partial<Config> = {}): Promise<TwoPlanes> {
  const a = await startTestApp({ startLoops: true, config });
  const b = await startTestApp({ startLoops: true, stores: a.stores });
  const [servedA, servedB] = await Promise.all([listen(a), listen(b)]);
  return {
    a,
    b,
    urlA: servedA.baseUrl,
    urlB: servedB.baseUrl,
    async close() {
      await b.close();
      await a.close();
      await Promise.all([servedA.close(), servedB.close()]);
    },
  };
}

/** A raw agent end of a channel: messages in arrival order, the close code when it closes. */
export class TestChannel {
  private readonly inbox: ControlPlaneMessage[] = [];
  private readonly waiters: ((message: ControlPlaneMessage) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString()) as ControlPlaneMessage;
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.inbox.push(message);
    });
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    this.opened = new Promise((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("unexpected-response", (_request, response) => reject(Object.assign(new Error("refused"), { status: response.statusCode })));
      ws.on("error", reject);
    });
  }

  static dial(baseUrl: string, hostId: string, token: string): TestChannel {
    return new TestChannel(new WebSocket(`${baseUrl.replace(/^http/, "ws")}/v1/hosts/${hostId}/channel`, { headers: { "x-host-token": token } }));
  }

  /** Dials, says hello (as an agent of `protocol`) and waits for the welcome. */
  static async open(baseUrl: string, hostId: string, token: string, protocol = PROTOCOL_VERSION): Promise<TestChannel> {
    const channel = TestChannel.dial(baseUrl, hostId, token);
    await channel.opened;
    channel.send({ type: "hello", protocol_version: protocol, agent_version: "test-1.0" });
    const welcome = await channel.next();
    if (welcome.type !== "welcome") throw new Error(`expected a welcome, got ${JSON.stringify(welcome)}`);
    return channel;
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  next(timeoutMs = 5_000): Promise<ControlPlaneMessage> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no message from the control plane in time")), timeoutMs);
      this.waiters.push((message) => (clearTimeout(timer), resolve(message)));
    });
  }

  /** Whether a message arrives within `ms` (it stays queued for next()). */
  async quietFor(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.inbox.length === 0;
  }

  close(): void {
    this.ws.close();
  }
}

/** Polls until `check` returns a value (not undefined), or fails after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A WebSocket upgrade request; a refusal's status and JSON body, or 101 when the server took the socket. */
export function upgradeRequest(baseUrl: string, path: string, headers: Record<string, string>): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, {
      headers: {
        ...headers,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": randomBytes(16).toString("base64"),
      },
    });
    req.on("upgrade", (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode ?? 0, body: undefined, headers: new Headers() });
    });
    req.on("response", (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
      response.on("end", () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: the envelope check reports it.
        }
        resolve({ status: response.statusCode ?? 0, body, headers: new Headers() });
      });
    });
    req.on("error", reject);
    req.end();
  });
}
