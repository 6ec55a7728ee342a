import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, machineSpecs } from "./support/factories.js";

let t: TestApp;
let f: Factories;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
});
afterAll(() => t.close());

describe("registration token", () => {
  it("is 64 hex characters, valid one hour, and trades for credentials once", async () => {
    const created = await f.regularHost({ provider: "aws", availability_zone: "eu-west-1a" });
    expect(created.registration_token).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(created.registration_token_expires_at) - clock.now().getTime()).toBe(3600_000);

    const creds = await f.register(created.registration_token);
    expect(creds.host).toMatchObject({ id: created.host.id, ...{ arch: "amd64", cpu_cores: 8, memory_mb: 16384, disk_gb: 200 } });
    expect(creds.host.address).toBe(machineSpecs.address);
    expect(creds.heartbeat_interval_s).toBe(t.config.heartbeatIntervalS);
    expect(creds.refresh_token).toMatch(/^mrt_/);
    expect(Date.parse(creds.token_expires_at) - clock.now().getTime()).toBe(t.config.hostTokenTtlS * 1000);

    const again = await t.http.post("/v1/hosts/register", { body: { token: created.registration_token, ...machineSpecs, hostname: "another-machine" } });
    expect(again.status).toBe(401);
    expect(await f.auditOf(created.host.id, "host.registered")).toHaveLength(1);
  });

  it("is stored only as a hash", async () => {
    const created = await f.regularHost();
    const rows = await t.stores.database.db.query.hostRegistrationTokens.findMany();
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(created.registration_token);
    const row = rows.find((r) => r.hostId === created.host.id)!;
    expect(row.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.createdBy).toBeDefined();
  });

  it("admits exactly one of 40 concurrent registrations", async () => {
    const { registration_token, host } = await f.regularHost();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.http.post("/v1/hosts/register", { body: { token: registration_token, ...machineSpecs, hostname: `racer-${i}` } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(39);
    expect(await f.auditOf(host.id, "host.registered")).toHaveLength(1);
  });

  it("answers unknown, used, expired and superseded tokens the same way", async () => {
    const refusals = [];
    refusals.push(await t.http.post("/v1/hosts/register", { body: { token: "f".repeat(64), ...machineSpecs } }));

    const used = await f.regularHost();
    await f.register(used.registration_token);
    refusals.push(await t.http.post("/v1/hosts/register", { body: { token: used.registration_token, ...machineSpecs, machine_id: "another-machine" } }));

    const superseded = await f.regularHost();
    const regenerated = await t.http.post(`/v1/hosts/${superseded.host.id}/token`, { key: t.adminKey });
    expect(regenerated.status).toBe(201);
    refusals.push(await t.http.post("/v1/hosts/register", { body: { token: superseded.registration_token, ...machineSpecs } }));

    const expired = await f.regularHost();
    clock.advance(3600_000 + 1);
    refusals.push(await t.http.post("/v1/hosts/register", { body: { token: expired.registration_token, ...machineSpecs } }));

    for (const refusal of refusals) {
      expect(refusal.status).toBe(401);
      expect(refusal.body).toEqual(refusals[0]!.body);
    }
    expect(refusals[0]!.body.error.code).toBe("unauthorized");
    // The regenerated token is still good (it was issued before the clock moved, but let a fresh one prove it).
    const fresh = await t.http.post(`/v1/hosts/${superseded.host.id}/token`, { key: t.adminKey });
    await f.register(fresh.body.registration_token);
  });

  it("refuses a malformed registration as 400 without consuming the token", async () => {
    const { registration_token } = await f.regularHost();
    const bad = await t.http.post("/v1/hosts/register", { body: { token: registration_token, ...machineSpecs, cpu_cores: "eight" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("cpu_cores");
    await f.register(registration_token);
  });

  it("on re-registration kills every earlier host token and refresh token", async () => {
    const created = await f.regularHost();
    const first = await f.register(created.registration_token);
    expect((await f.heartbeat(first)).status).toBe(204);

    const again = await t.http.post(`/v1/hosts/${created.host.id}/token`, { key: t.adminKey });
    const second = await f.register(again.body.registration_token, { hostname: "reinstalled" });
    expect(second.host.hostname).toBe("reinstalled");

    expect((await f.heartbeat(first)).status).toBe(401);
    const oldRefresh = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: first.refresh_token } });
    expect(oldRefresh.status).toBe(401);
    expect((await f.heartbeat(second)).status).toBe(204);
    const registrations = await f.auditOf(created.host.id, "host.registered");
    expect(registrations.map((entry) => entry.metadata.re_registration).sort()).toEqual([false, true]);
  });
});

describe("refresh token", () => {
  it("rotates on every use and returns fresh credentials", async () => {
    const creds = await f.enrolledHost();
    const refreshed = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(creds.refresh_token);
    expect(refreshed.body.heartbeat_interval_s).toBe(t.config.heartbeatIntervalS);
    expect((await f.heartbeat(refreshed.body)).status).toBe(204);
    const next = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: refreshed.body.refresh_token } });
    expect(next.status).toBe(200);
  });

  it("presented twice revokes the whole family and is audited", async () => {
    const creds = await f.enrolledHost();
    const rotated = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(rotated.status).toBe(200);

    const replay = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(replay.status).toBe(401);

    expect((await f.heartbeat(rotated.body)).status).toBe(401);
    expect((await f.heartbeat(creds)).status).toBe(401);
    const afterTheft = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: rotated.body.refresh_token } });
    expect(afterTheft.status).toBe(401);
    expect(await f.auditOf(creds.host.id, "host.refresh_reused")).toHaveLength(1);
  });

  it("lets at most one of two concurrent refreshes succeed", async () => {
    const creds = await f.enrolledHost();
    const results = await Promise.all(
      [0, 1].map(() => t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } })),
    );
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
    expect(results.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(1);
  });

  it("expires after its lifetime", async () => {
    const creds = await f.enrolledHost();
    clock.advance(t.config.refreshTokenTtlS * 1000 + 1);
    const res = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toContain("register again");
  });

  it("is stored only as a hash", async () => {
    const creds = await f.enrolledHost();
    const rows = await t.stores.database.db.query.hostRefreshTokens.findMany();
    expect(JSON.stringify(rows)).not.toContain(creds.refresh_token);
  });
});

describe("deleted host", () => {
  it("loses its credentials at once; heartbeats and refreshes get 404 so the agent wipes them", async () => {
    const creds = await f.enrolledHost();
    expect((await f.heartbeat(creds)).status).toBe(204);
    expect((await t.http.delete(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).status).toBe(204);

    const beat = await f.heartbeat(creds);
    expect(beat.status).toBe(404);
    expect(beat.body.error.code).toBe("not_found");
    const refresh = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(refresh.status).toBe(404);
    expect(refresh.body.error.message).toContain("remove its credentials");
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).status).toBe(404);
    expect(await f.auditOf(creds.host.id, "host.deleted")).toHaveLength(1);
  });

  it("cannot be registered with a token issued before the deletion", async () => {
    const created = await f.regularHost();
    await t.http.delete(`/v1/hosts/${created.host.id}`, { key: t.adminKey });
    const res = await t.http.post("/v1/hosts/register", { body: { token: created.registration_token, ...machineSpecs } });
    expect(res.status).toBe(401);
  });
});
