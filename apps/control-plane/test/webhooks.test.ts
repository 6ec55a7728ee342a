import { createServer, type IncomingMessage, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhookSignature } from "@muster/sdk";
import type { MusterEvent } from "@muster/contract";
import { startTestApp, type TestApp } from "./support/app.js";
import { startTwoPlanes, type TwoPlanes } from "./support/channel.js";
import { Factories, type TeamFixture } from "./support/factories.js";

/**
 * Webhooks against a receiver on loopback: signed deliveries (checked with
 * the SDK's verifyWebhookSignature), retries with backoff against a receiver
 * that fails N times, order per host, team scope, one sender per delivery.
 */
interface Received {
  event: MusterEvent;
  at: number;
  signatureOk: boolean;
  headers: IncomingMessage["headers"];
}

class Receiver {
  readonly received: Received[] = [];
  /** Answers 500 to the first N deliveries of each `<type> <host_id>` listed here. */
  failFirst = new Map<string, number>();
  private readonly server: Server;
  url = "";
  secret = "";

  constructor() {
    this.server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        void (async () => {
          const event = JSON.parse(body) as MusterEvent;
          const signatureOk = await verifyWebhookSignature(body, req.headers["muster-signature"] as string, this.secret);
          this.received.push({ event, at: Date.now(), signatureOk, headers: req.headers });
          const which = `${event.type} ${event.host_id}`;
          const left = this.failFirst.get(which) ?? 0;
          if (left > 0) this.failFirst.set(which, left - 1);
          res.writeHead(left > 0 ? 500 : 204).end();
        })();
      });
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  async waitFor(count: number, timeoutMs = 15_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`receiver got ${this.received.length} of ${count} deliveries: ${this.received.map((r) => r.event.type).join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.received;
  }
}

let t: TestApp;
let f: Factories;
const RETRY_BASE_MS = 200;

beforeAll(async () => {
  t = await startTestApp({ startLoops: true, config: { webhookRetryBaseMs: RETRY_BASE_MS } });
  f = new Factories(t);
});
afterAll(() => t.close());

async function hook(key: string, receiver: Receiver, body: Record<string, unknown>) {
  const res = await t.http.post("/v1/webhooks", { key, body: { url: receiver.url, ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  receiver.secret = res.body.secret;
  return res.body as { webhook: { id: string; secret_start: string }; secret: string };
}

describe("webhook management", () => {
  let team: TeamFixture;
  let receiver: Receiver;
  beforeAll(async () => {
    team = await f.team();
    receiver = await new Receiver().start();
  });
  afterAll(() => receiver.close());

  it("an owner creates one for the team; the secret is shown once, listings show its start only", async () => {
    const created = await hook(team.owner.key, receiver, { types: ["host.*"] });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.webhook).toMatchObject({ url: receiver.url, types: ["host.*"], team_id: team.team.id, secret_start: created.secret.slice(0, 10) });
    const listed = await t.http.get("/v1/webhooks", { key: team.owner.key });
    expect(listed.body.items).toEqual([created.webhook]);
    expect(JSON.stringify(listed.body)).not.toContain(created.secret);
    const given = await hook(team.owner.key, receiver, { types: ["command.failed"], secret: "a-secret-the-receiver-chose-1234" });
    expect(given.secret).toBe("a-secret-the-receiver-chose-1234");
  });

  it("members may not; another team's owner sees none and cannot touch them; admins see all", async () => {
    const created = await hook(team.owner.key, receiver, { types: ["host.online"] });
    expect((await t.http.post("/v1/webhooks", { key: team.member.key, body: { url: receiver.url, types: ["host.online"] } })).status).toBe(403);
    expect((await t.http.get("/v1/webhooks", { key: team.member.key })).status).toBe(403);
    const other = await f.team();
    expect((await t.http.get("/v1/webhooks", { key: other.owner.key })).body.items).toEqual([]);
    expect((await t.http.delete(`/v1/webhooks/${created.webhook.id}`, { key: other.owner.key })).status).toBe(404);
    expect((await t.http.get(`/v1/webhooks/${created.webhook.id}/deliveries`, { key: other.owner.key })).status).toBe(404);
    expect((await t.http.post("/v1/webhooks", { key: other.owner.key, body: { url: receiver.url, types: ["host.online"], team_id: team.team.id } })).status).toBe(404);
    expect((await t.http.get("/v1/webhooks?limit=500", { key: t.adminKey })).body.items.map((w: { id: string }) => w.id)).toContain(created.webhook.id);
    expect((await t.http.delete(`/v1/webhooks/${created.webhook.id}`, { key: team.owner.key })).status).toBe(204);
    expect((await t.http.delete(`/v1/webhooks/${created.webhook.id}`, { key: team.owner.key })).status).toBe(404);
  });

  it("refuses URLs that are not http(s) or carry credentials, unknown types and short secrets", async () => {
    for (const body of [
      { url: "ftp://example.com/hook", types: ["host.online"] },
      { url: "http://user:pass@example.com/hook", types: ["host.online"] },
      { url: "not a url", types: ["host.online"] },
      { url: receiver.url, types: ["host.exploded"] },
      { url: receiver.url, types: [] },
      { url: receiver.url, types: ["host.online"], secret: "short" },
    ]) {
      const res = await t.http.post("/v1/webhooks", { key: team.owner.key, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });
});

describe("the address policy (the probe's) on webhook URLs", () => {
  it("refuses metadata and link-local URLs at creation, and loopback unless MUSTER_PROBE_ALLOW_CIDRS allows it", async () => {
    const strict = await startTestApp({ startLoops: true, stores: t.stores, config: { probeAllowCidrs: [], webhookRetryBaseMs: RETRY_BASE_MS } });
    const receiver = await new Receiver().start();
    try {
      for (const url of ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]:8080/x", receiver.url, "http://localhost:9/x"]) {
        const res = await strict.http.post("/v1/webhooks", { key: t.adminKey, body: { url, types: ["host.created"] } });
        expect(res.status, url).toBe(400);
        expect(res.body.error.message).toMatch(/MUSTER_PROBE_ALLOW_CIDRS|refuses|does not connect/);
      }
      // Allowed here (the suite's default allows loopback): the same receiver gets its deliveries.
      expect((await t.http.post("/v1/webhooks", { key: t.adminKey, body: { url: receiver.url, types: ["host.created"] } })).status).toBe(201);
    } finally {
      await receiver.close();
      await strict.close();
    }
  });
});

describe("deliveries", () => {
  it("POSTs each matching event, signed (the SDK's verifyWebhookSignature accepts it), with its ID and type in headers", async () => {
    const receiver = await new Receiver().start();
    try {
      const team = await f.team();
      const created = await hook(team.owner.key, receiver, { types: ["host.created", "host.tags_changed"] });
      const host = await f.host(team.owner.key, { type: "byoc" });
      await t.http.post(`/v1/hosts/${host.host.id}/tags`, { key: team.owner.key, body: { tag: "gpu" } });
      await t.http.post(`/v1/hosts/${host.host.id}/commands`, { key: team.owner.key, body: { type: "ping" } });
      const got = await receiver.waitFor(2);
      expect(got.map((r) => r.event.type)).toEqual(["host.created", "host.tags_changed"]);
      expect(got.every((r) => r.signatureOk)).toBe(true);
      expect(got[0]!.headers["muster-event-id"]).toBe(got[0]!.event.id);
      expect(got[0]!.headers["muster-event-type"]).toBe("host.created");
      expect(got[0]!.headers["content-type"]).toBe("application/json");
      expect(got[0]!.event.data).toEqual(host.host);
      // A wrong secret does not verify.
      expect(await verifyWebhookSignature(JSON.stringify(got[0]!.event), got[0]!.headers["muster-signature"] as string, "another-secret-entirely-000")).toBe(false);

      const deliveries = await t.http.get(`/v1/webhooks/${created.webhook.id}/deliveries`, { key: team.owner.key });
      expect(deliveries.body.items.map((d: { event_type: string; status: string }) => `${d.event_type} ${d.status}`).sort()).toEqual([
        "host.created succeeded",
        "host.tags_changed succeeded",
      ]);
      expect(deliveries.body.items[0].attempts).toEqual([expect.objectContaining({ status_code: 204, error: null })]);
    } finally {
      await receiver.close();
    }
  });

  it("retries a receiver that fails 3 times with growing pauses, records every attempt, and holds the host's next event until then", async () => {
    const receiver = await new Receiver().start();
    try {
      const created = await hook(t.adminKey, receiver, { types: ["host.created", "host.tags_changed", "host.deleted"] });
      const first = await f.regularHost();
      const other = await f.regularHost();
      const firstEvent = (await receiver.waitFor(2)).find((r) => r.event.host_id === first.host.id)!.event;
      expect(firstEvent.type).toBe("host.created");
      receiver.received.length = 0;

      // The next event of `first` fails three times; its later ones must wait, `other`'s need not.
      receiver.failFirst.set(`host.tags_changed ${first.host.id}`, 3);
      const tagged = await t.http.post(`/v1/hosts/${first.host.id}/tags`, { key: t.adminKey, body: { tag: "slow" } });
      expect(tagged.status).toBe(204);
      await t.http.delete(`/v1/hosts/${first.host.id}`, { key: t.adminKey });
      await t.http.delete(`/v1/hosts/${other.host.id}`, { key: t.adminKey });

      const got = await receiver.waitFor(6, 30_000);
      const ofFirst = got.filter((r) => r.event.host_id === first.host.id);
      expect(ofFirst.map((r) => r.event.type)).toEqual(["host.tags_changed", "host.tags_changed", "host.tags_changed", "host.tags_changed", "host.deleted"]);
      expect(got.filter((r) => r.event.host_id === other.host.id).map((r) => r.event.type)).toEqual(["host.deleted"]);
      const gaps = ofFirst.slice(1, 4).map((r, i) => r.at - ofFirst[i]!.at);
      expect(gaps[0]).toBeGreaterThanOrEqual(RETRY_BASE_MS);
      expect(gaps[1]).toBeGreaterThanOrEqual(2 * RETRY_BASE_MS);
      expect(gaps[2]).toBeGreaterThanOrEqual(4 * RETRY_BASE_MS);

      const deliveries = (await t.http.get(`/v1/webhooks/${created.webhook.id}/deliveries?limit=500`, { key: t.adminKey })).body.items;
      const slow = deliveries.find((d: { event_type: string; host_id: string }) => d.event_type === "host.tags_changed" && d.host_id === first.host.id);
      expect(slow.status).toBe("succeeded");
      expect(slow.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([500, 500, 500, 204]);
      expect(slow.attempts[0].error).toMatch(/answered 500/);
    } finally {
      await receiver.close();
    }
  });

  it("another team's events never reach a team's webhook; an admin's webhook without a team gets every team's", async () => {
    const receiverA = await new Receiver().start();
    const receiverAll = await new Receiver().start();
    try {
      const [a, b] = [await f.team(), await f.team()];
      await hook(a.owner.key, receiverA, { types: ["host.*", "command.*"] });
      await hook(t.adminKey, receiverAll, { types: ["host.created"] });
      const hostB = await f.host(b.owner.key, { type: "byoc" });
      await t.http.post(`/v1/hosts/${hostB.host.id}/commands`, { key: b.owner.key, body: { type: "ping" } });
      const hostA = await f.host(a.owner.key, { type: "byoc" });
      await receiverAll.waitFor(2);
      await receiverA.waitFor(1);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(receiverA.received.map((r) => `${r.event.type} ${r.event.host_id}`)).toEqual([`host.created ${hostA.host.id}`]);
      expect(receiverAll.received.map((r) => r.event.host_id)).toEqual(expect.arrayContaining([hostA.host.id, hostB.host.id]));
    } finally {
      await receiverA.close();
      await receiverAll.close();
    }
  });
});

describe("several control planes", () => {
  let planes: TwoPlanes;
  beforeAll(async () => {
    planes = await startTwoPlanes({ webhookRetryBaseMs: RETRY_BASE_MS });
  });
  afterAll(() => planes.close());

  it("each delivery is sent by one process: every event arrives once when the receiver answers 2xx", async () => {
    const receiver = await new Receiver().start();
    try {
      const res = await planes.a.http.post("/v1/webhooks", { key: planes.a.adminKey, body: { url: receiver.url, types: ["host.created"] } });
      receiver.secret = res.body.secret;
      const made: string[] = [];
      for (let i = 0; i < 20; i++) {
        const app = i % 2 === 0 ? planes.a : planes.b;
        made.push((await app.http.post("/v1/hosts", { key: planes.a.adminKey, body: { type: "regular" } })).body.host.id);
      }
      await receiver.waitFor(20);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(receiver.received.map((r) => r.event.host_id).sort()).toEqual([...made].sort());
    } finally {
      await receiver.close();
    }
  });
});
