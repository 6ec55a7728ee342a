import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import pino from "pino";
import { UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { Pacing } from "../src/services/pacing.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

describe("pacing left alone", () => {
  it("keeps the configured interval and offline window, whatever their ratio", () => {
    const logger = pino({ level: "silent" });
    const config = { heartbeatIntervalS: 2, offlineAfterS: 5 };
    const uncapped = new Pacing(null as never, { ...config, maxHeartbeatsPerS: null }, logger);
    expect([uncapped.intervalS(), uncapped.offlineAfterS()]).toEqual([2, 5]);
    // Capped but under the cap (nothing counted yet): nothing stretches either.
    const capped = new Pacing(null as never, { ...config, maxHeartbeatsPerS: 100 }, logger);
    expect([capped.intervalS(), capped.offlineAfterS()]).toEqual([2, 5]);
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
    // 80 hosts at most 2 beats a second between them: one beat every 40 s each.
    const paced = await refresh(fleet[1]!);
    expect(paced.heartbeat_interval_s).toBe(40);
    expect((await f.register((await f.regularHost()).registration_token)).heartbeat_interval_s).toBe(40);
  });

  it("stretches the offline window with the interval, so paced hosts are not marked offline", async () => {
    await recount();
    const creds = await f.enrolledHost();
    expect((await f.heartbeat(creds)).status).toBe(204);
    // 81 hosts → 41 s interval → the 90 s window stretched by 41/30: 123 s (plus the batch allowance).
    clock.advance(122_000 + UNFLUSHED_ALLOWANCE_MS);
    await t.runtime.deps.liveness.sweepOnce();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status).toBe("online");
    clock.advance(1_001);
    await t.runtime.deps.liveness.sweepOnce();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status).toBe("offline");
  });
});
