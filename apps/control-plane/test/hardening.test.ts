import { Writable } from "node:stream";
import { sql } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANNEL_CLOSE } from "@muster/contract";
import { loadConfig } from "../src/config.js";
import { logSerializers } from "../src/log.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { listen, TestChannel } from "./support/channel.js";
import { Factories, machineSpecs } from "./support/factories.js";

/**
 * Smaller holes found by trying the control plane as an attacker would: NUL
 * in JSON strings, what an unexpected failure writes to the log, API keys
 * minted with API keys, an owner reaching an admin's keys, /metrics open to
 * anyone.
 */
let t: TestApp;
let f: Factories;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  t = await startTestApp({ logger: pino({ level: "warn", serializers: logSerializers }, sink), config: { metricsToken: "metrics-token-0123456789" } });
  f = new Factories(t);
});
afterAll(() => t.close());

describe("NUL in JSON strings", () => {
  it("is a 400 in the envelope wherever it appears: command payloads, tags, names, hostnames, keys, queries", async () => {
    const creds = await f.enrolledHost();
    const pending = await f.regularHost();
    const attempts = {
      "command payload value": () => t.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: t.adminKey, body: { type: "deploy", payload: { env: "A=\u0000" } } }),
      "command payload key": () => t.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: t.adminKey, body: { type: "deploy", payload: { "k\u0000": 1 } } }),
      "nested payload": () => t.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: t.adminKey, body: { type: "deploy", payload: { a: [{ b: "\u0000" }] } } }),
      tag: () => t.http.post(`/v1/hosts/${creds.host.id}/tags`, { key: t.adminKey, body: { tag: "ssd\u0000" } }),
      "team name": () => t.http.post("/v1/teams", { key: t.adminKey, body: { name: "team\u0000" } }),
      "user name": () => t.http.post("/v1/users", { key: t.adminKey, body: { email: "nul@example.test", name: "a\u0000b" } }),
      "host provider": () => t.http.post("/v1/hosts", { key: t.adminKey, body: { type: "regular", provider: "aws\u0000" } }),
      "api key name": () => t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: "\u0000" } }),
      hostname: () => t.http.post("/v1/hosts/register", { body: { token: pending.registration_token, ...machineSpecs, hostname: "worker\u0000" } }),
      "audit query": () => t.http.get("/v1/audit?action=host.created%00", { key: t.adminKey }),
    };
    for (const [where, attempt] of Object.entries(attempts)) {
      const res = await attempt();
      expect(res.status, `${where}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error, where).toMatchObject({ code: "invalid_request", message: expect.stringMatching(/NUL character/) });
    }
    // The registration token was not spent by the refusal.
    expect((await t.http.post("/v1/hosts/register", { body: { token: pending.registration_token, ...machineSpecs } })).status).toBe(201);
  });

  it("in a channel message closes the channel as a protocol error; nothing is stored", async () => {
    const served = await listen(t);
    try {
      const creds = await f.enrolledHost();
      // Sent before the channel opens, so it comes right after the welcome (this app runs no bus loops).
      const sent = await t.http.post(`/v1/hosts/${creds.host.id}/commands`, { key: t.adminKey, body: { type: "deploy" } });
      const channel = await TestChannel.open(served.baseUrl, creds.host.id, creds.token);
      expect(await channel.next()).toMatchObject({ type: "command", id: sent.body.id });
      channel.send({ type: "result", id: sent.body.id, ok: true, result: { out: "x\u0000y" } });
      expect((await channel.closed).code).toBe(CHANNEL_CLOSE.badMessage);
      const command = await t.http.get(`/v1/hosts/${creds.host.id}/commands/${sent.body.id}`, { key: t.adminKey });
      expect(command.body).toMatchObject({ status: "queued", result: null });
    } finally {
      await served.close();
    }
  });
});

describe("the log of an unexpected failure", () => {
  it("names the failure but holds no query parameters, bodies or payloads", async () => {
    const creds = await f.enrolledHost();
    const marker = `s3cret-${Date.now()}`;
    // A failure the database makes on our behalf, with the payload among the query's parameters.
    await t.stores.database.db.execute(
      sql.raw(`alter table host_commands add constraint test_refuses_marker check (payload::text not like '%${marker}%')`),
    );
    try {
      logLines.length = 0;
      const res = await t.http.post(`/v1/hosts/${creds.host.id}/commands`, {
        key: t.adminKey,
        body: { type: "deploy", payload: { password: marker } },
      });
      expect(res.status).toBe(500);
      expect(JSON.stringify(res.body)).not.toContain(marker);
      const failure = logLines.find((line) => line.msg === "unhandled error");
      expect(failure).toBeDefined();
      expect(failure!.err).toMatchObject({ type: "DrizzleQueryError", query: expect.stringMatching(/^insert into "host_commands"/) });
      expect(JSON.stringify(failure!.err)).toMatch(/"code":"23514"/);
      expect(JSON.stringify(logLines)).not.toContain(marker);
    } finally {
      await t.stores.database.db.execute(sql.raw("alter table host_commands drop constraint test_refuses_marker"));
    }
  });
});

describe("API keys minted with API keys", () => {
  it("never outlive their parent: expires_at is capped at the parent's", async () => {
    const user = await f.user(true);
    const parent = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: "parent", user_id: user.id, expires_in_s: 3600 } });
    const parentEnds = parent.body.api_key.expires_at as string;
    const longer = await t.http.post("/v1/api-keys", { key: parent.body.key, body: { name: "longer", expires_in_s: 7200 } });
    const forever = await t.http.post("/v1/api-keys", { key: parent.body.key, body: { name: "forever" } });
    const shorter = await t.http.post("/v1/api-keys", { key: parent.body.key, body: { name: "shorter", expires_in_s: 60 } });
    expect(longer.body.api_key.expires_at).toBe(parentEnds);
    expect(forever.body.api_key.expires_at).toBe(parentEnds);
    expect(Date.parse(shorter.body.api_key.expires_at)).toBeLessThan(Date.parse(parentEnds));
  });

  it("die with their parent, and so do theirs", async () => {
    const { team, owner } = await f.team();
    const child = await t.http.post("/v1/api-keys", { key: owner.key, body: { name: "child" } });
    const grandchild = await t.http.post("/v1/api-keys", { key: child.body.key, body: { name: "grandchild" } });
    const sibling = await f.key(owner.user.id, team.id);
    for (const key of [child.body.key, grandchild.body.key]) expect((await t.http.get("/v1/me", { key })).status).toBe(200);

    const minted = [child.body.api_key.id, grandchild.body.api_key.id];
    const ownKeys = (await t.http.get("/v1/api-keys", { key: owner.key })).body.items as Array<{ id: string; start: string }>;
    const ownerKeyId = ownKeys.find((k) => !minted.includes(k.id) && owner.key.startsWith(k.start))!.id;
    expect((await t.http.delete(`/v1/api-keys/${ownerKeyId}`, { key: t.adminKey })).status).toBe(204);
    for (const key of [owner.key, child.body.key, grandchild.body.key]) expect((await t.http.get("/v1/me", { key })).status).toBe(401);
    // A key the admin minted for the same user is not the revoked key's child.
    expect((await t.http.get("/v1/me", { key: sibling })).status).toBe(200);
    const audit = await f.auditOf(ownerKeyId, "api_key.revoked");
    expect(audit[0]!.metadata.also_revoked).toEqual(minted);
  });
});

describe("an admin's keys", () => {
  it("are out of an owner's reach, even when they act in the owner's team: not listed, and 404 on revoke", async () => {
    const { team, owner } = await f.team();
    const admin = await f.user(true);
    const added = await t.http.post(`/v1/teams/${team.id}/members`, { key: t.adminKey, body: { user_id: admin.id, role: "member" } });
    expect(added.status).toBe(201);
    const adminKey = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: "admin in team", user_id: admin.id, team_id: team.id } });
    expect(adminKey.status).toBe(201);

    const listed = await t.http.get("/v1/api-keys", { key: owner.key });
    expect(listed.body.items.map((k: { id: string }) => k.id)).not.toContain(adminKey.body.api_key.id);
    const revoke = await t.http.delete(`/v1/api-keys/${adminKey.body.api_key.id}`, { key: owner.key });
    expect(revoke.status).toBe(404);
    expect((await t.http.get("/v1/me", { key: adminKey.body.key })).status).toBe(200);

    // A member's key in the same team the owner may revoke, as before.
    const memberKey = await f.key((await f.member(team.id, "member")).user.id, team.id);
    const memberKeyId = (await t.http.get("/v1/api-keys", { key: memberKey })).body.items[0].id as string;
    expect((await t.http.delete(`/v1/api-keys/${memberKeyId}`, { key: owner.key })).status).toBe(204);
  });
});

describe("/metrics behind MUSTER_METRICS_TOKEN", () => {
  it("answers 401 in the envelope without the token, or with another; the figures with it", async () => {
    const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer wrong-token-0123456789" }, { authorization: "metrics-token-0123456789" }];
    for (const headers of attempts) {
      const res = await t.http.get("/metrics", { headers });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.stringMatching(/MUSTER_METRICS_TOKEN/) } });
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    const res = await t.http.get("/metrics", { headers: { authorization: "Bearer metrics-token-0123456789" } });
    expect(res.status).toBe(200);
    expect(res.body).toContain("muster_http_requests_total");
  });

  it("stays open when the token is not set", async () => {
    const open = await startTestApp({ stores: t.stores });
    try {
      expect((await open.http.get("/metrics")).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe("configuration", () => {
  it("reads the listening host, the metrics token and the probe's ranges, and names each mistake", () => {
    const config = loadConfig({
      MUSTER_LISTEN_HOST: "127.0.0.1",
      MUSTER_METRICS_TOKEN: "a-token-of-sixteen-chars",
      MUSTER_PROBE_ALLOW_CIDRS: "127.0.0.0/8, ::1",
      MUSTER_PROBE_DENY_CIDRS: "10.9.0.0/16",
      MUSTER_PROBE_INTERVAL_S: "30",
    });
    expect(config).toMatchObject({
      listenHost: "127.0.0.1",
      metricsToken: "a-token-of-sixteen-chars",
      probeAllowCidrs: ["127.0.0.0/8", "::1"],
      probeDenyCidrs: ["10.9.0.0/16"],
      probeIntervalS: 30,
    });
    expect(loadConfig({})).toMatchObject({ listenHost: "0.0.0.0", metricsToken: null, probeAllowCidrs: [], probeDenyCidrs: [], probeIntervalS: 10 });
    const attempt = () =>
      loadConfig({ MUSTER_LISTEN_HOST: "everywhere", MUSTER_METRICS_TOKEN: "short", MUSTER_PROBE_ALLOW_CIDRS: "127.0.0.0/33", MUSTER_PROBE_DENY_CIDRS: "ten" });
    expect(attempt).toThrow(/MUSTER_LISTEN_HOST must be an IP address/);
    expect(attempt).toThrow(/MUSTER_METRICS_TOKEN must be at least 16 characters/);
    expect(attempt).toThrow(/MUSTER_PROBE_ALLOW_CIDRS must list IP addresses or CIDRs.*"127.0.0.0\/33"/);
    expect(attempt).toThrow(/MUSTER_PROBE_DENY_CIDRS must list IP addresses or CIDRs.*"ten"/);
  });
});
