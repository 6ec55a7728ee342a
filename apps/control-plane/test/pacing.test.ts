import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import pino from "pino";
import { Liveness, UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { Pacing } from "../src/services/pacing.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

describe("pacing left alone", () => {
  it("keeps the configured interval and offline window, whatever their ratio", () => {
    const logger = pino({ level: "silent" });
    const config = { heartbeatIntervalS: 2, offlineAfterS: 5 };
    const uncapped = new Pacing(null as never, { ...config, maxHeartbeatsPerS: null }, logger);
    expect([uncapped.intervalS("host-a"), uncapped.offlineAfterS()]).toEqual([2, 5]);
    // Capped but under the cap (nothing counted yet): nothing stretches either.
    const capped = new Pacing(null as never, { ...config, maxHeartbeatsPerS: 100 }, logger);
    expect([capped.intervalS("host-a"), capped.offlineAfterS()]).toEqual([2, 5]);
  });
});

describe("server-driven pacing (MUSTER_MAX_HEARTBEATS_PER_S)", () => {
  let t: TestApp;
  let f: Factories;
  const clock = new FakeClock();
  const recount = () => t.runtime.deps.pacing.recount();

  beforeAll(async () => {
    t = await startTestApp({ clock, config: { maxHeartbeatsPerS: 2, heartbeatIntervalS: 30, offlineAfterS: 90 } });
    f = new Factories(t);
  });
  afterAll(() => t.close());

  const refresh = async (creds: HostCredentials): Promise<HostCredentials> => {
    const res = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(res.status).toBe(200);
    return res.body;
  };

  it("keeps the configured interval while the fleet is under the cap, and stretches it as the fleet grows", async () => {
    const fleet: HostCredentials[] = [];
    for (let i = 0; i < 40; i++) fleet.push(await f.enrolledHost());
    await recount();
    expect((await refresh(fleet[0]!)).heartbeat_interval_s).toBe(30);

    for (let i = 0; i < 40; i++) fleet.push(await f.enrolledHost());
    await recount();
    // 80 hosts at most 2 beats a second between them: one beat every 40 s each, and up to 4 s of jitter per host.
    const refreshed = await Promise.all(fleet.slice(1, 21).map(refresh));
    const paced = refreshed.map((creds) => creds.heartbeat_interval_s);
    expect(Math.min(...paced)).toBeGreaterThanOrEqual(40);
    expect(Math.max(...paced)).toBeLessThanOrEqual(44);
    expect(new Set(paced).size).toBeGreaterThan(1);
    const again = await refresh(refreshed[0]!);
    expect(again.heartbeat_interval_s).toBe(paced[0]);
    const registered = (await f.register((await f.regularHost()).registration_token)).heartbeat_interval_s;
    expect(registered).toBeGreaterThanOrEqual(40);
    expect(registered).toBeLessThanOrEqual(44);
  });

  it("stretches the offline window with the interval, so paced hosts are not marked offline", async () => {
    await recount();
    const creds = await f.enrolledHost();
    expect((await f.heartbeat(creds)).status).toBe(204);
    // 81 hosts → 41 s interval, 45 s with the most jitter → the 90 s window stretched by 45/30: 135 s (plus the batch allowance).
    clock.advance(134_000 + UNFLUSHED_ALLOWANCE_MS);
    await t.runtime.deps.liveness.sweepOnce();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status).toBe("online");
    clock.advance(1_001);
    await t.runtime.deps.liveness.sweepOnce();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status).toBe("offline");
  });
});

describe("spreading first beats (paced)", () => {
  let t: TestApp;
  let f: Factories;
  const clock = new FakeClock();

  beforeAll(async () => {
    t = await startTestApp({ clock, config: { maxHeartbeatsPerS: 2, heartbeatIntervalS: 30, offlineAfterS: 90 } });
    f = new Factories(t);
  });
  afterAll(() => t.close());

  it("lets the cap's worth of a stampede through each second and tells the rest when to come back", async () => {
    const fleet: HostCredentials[] = [];
    for (let i = 0; i < 10; i++) fleet.push(await f.enrolledHost());
    await t.runtime.deps.pacing.recount();

    // 10 hosts at 2 first beats a second: the fleet needs 5 s.
    const waiting = new Map<HostCredentials, number>(fleet.map((creds) => [creds, clock.now().getTime()]));
    const admittedPerSecond: number[] = [];
    // Waits are random within those 5 s, so a few hosts may collide and wait again; 60 s is far beyond any bad luck.
    for (let second = 0; waiting.size > 0 && second < 60; second++) {
      let admitted = 0;
      for (const [creds, retryAt] of waiting) {
        if (retryAt > clock.now().getTime()) continue;
        const res = await f.heartbeat(creds);
        if (res.status === 204) {
          admitted++;
          waiting.delete(creds);
          continue;
        }
        expect(res.status).toBe(429);
        expect(res.body.error.code).toBe("rate_limited");
        const waitS = Number(res.headers.get("retry-after"));
        expect(waitS).toBeGreaterThanOrEqual(1);
        expect(waitS).toBeLessThanOrEqual(5);
        waiting.set(creds, clock.now().getTime() + waitS * 1000);
      }
      admittedPerSecond.push(admitted);
      clock.advance(1000);
    }
    expect(waiting.size).toBe(0);
    expect(admittedPerSecond[0]).toBe(2);
    expect(Math.max(...admittedPerSecond)).toBeLessThanOrEqual(2);
    for (const creds of fleet) {
      expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status).toBe("online");
    }
  });

  it("never makes a host wait past its own deadline", async () => {
    const creds = await f.enrolledHost();
    expect((await f.heartbeat(creds)).status).toBe(204);
    const claims = await t.runtime.deps.hostTokens.verify(creds.token);
    // A restarted process: the host's next beat is a first beat there, with no room left this second.
    const restarted = new Liveness(t.runtime.deps, "restarted", clock.now());
    const pacing = t.runtime.deps.pacing;
    while (pacing.takeFirstBeat(clock.now().getTime()));

    const beat = () => restarted.heartbeat(claims, creds.host.id, {});
    // 11 hosts are under the cap's 30 s, so the window is 90 s and the fleet needs 6 s at 2 a second.
    await expect(beat()).rejects.toMatchObject({ code: "rate_limited", retryAfterS: expect.any(Number) });
    // 10 s before the deadline the wait is cut to end 5 s before it; 4 s before, the beat goes ahead whatever the rate.
    clock.advance(80_000);
    while (pacing.takeFirstBeat(clock.now().getTime()));
    const refused = await beat().then(() => null, (error: unknown) => error as { retryAfterS: number });
    expect(refused?.retryAfterS).toBeLessThanOrEqual(5);
    clock.advance(6_000);
    while (pacing.takeFirstBeat(clock.now().getTime()));
    await expect(beat()).resolves.toBeUndefined();
    await restarted.stop();
  });
});
