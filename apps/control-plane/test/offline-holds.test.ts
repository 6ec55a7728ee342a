import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import { SERVING_SINCE_KEY } from "../src/services/kv-keys.js";
import { Liveness, UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

/** Offline transitions the control plane cannot vouch for are held: its own outage, or a fleet falling silent at once. */
function setup(config: Partial<TestApp["config"]> = {}) {
  const clock = new FakeClock();
  const ctx = { clock, t: undefined as unknown as TestApp, f: undefined as unknown as Factories };
  beforeAll(async () => {
    ctx.t = await startTestApp({ clock, config });
    ctx.f = new Factories(ctx.t);
  });
  afterAll(() => ctx.t.close());
  return ctx;
}

async function statuses(t: TestApp, fleet: HostCredentials[]): Promise<string[]> {
  return Promise.all(fleet.map(async (creds) => (await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status));
}

async function enrolledFleet(f: Factories, size: number): Promise<HostCredentials[]> {
  const fleet: HostCredentials[] = [];
  for (let i = 0; i < size; i++) fleet.push(await f.enrolledHost());
  return fleet;
}

describe("the mass-silence breaker", () => {
  const ctx = setup();
  const windowMs = () => ctx.t.config.offlineAfterS * 1000;
  const sweep = () => ctx.t.runtime.deps.liveness.sweepOnce();
  const heldGauge = async () => /^muster_offline_sweep_held (\d)$/m.exec(await (await ctx.t.http.get("/metrics")).body)?.[1];

  it("holds the sweep when most of the fleet falls silent at once, and marks only those still silent once hosts report in", async () => {
    const fleet = await enrolledFleet(ctx.f, 20);
    for (const creds of fleet) await ctx.f.heartbeat(creds);
    ctx.clock.advance(windowMs() + UNFLUSHED_ALLOWANCE_MS + 1);

    expect(await sweep()).toBe(0);
    expect(new Set(await statuses(ctx.t, fleet))).toEqual(new Set(["online"]));
    expect(await heldGauge()).toBe("1");

    // The fault clears: 12 hosts get through again; the 8 still silent are too few to be a fault of ours.
    for (const creds of fleet.slice(0, 12)) await ctx.f.heartbeat(creds);
    await ctx.t.runtime.deps.liveness.flushScores();
    expect(await sweep()).toBe(8);
    expect(await statuses(ctx.t, fleet)).toEqual([...Array(12).fill("online"), ...Array(8).fill("offline")]);
    expect(await heldGauge()).toBe("0");
  });

  it("marks a mass silence offline once it has outlasted one more window", async () => {
    const fleet = await enrolledFleet(ctx.f, 20);
    for (const creds of fleet) await ctx.f.heartbeat(creds);
    ctx.clock.advance(windowMs() + UNFLUSHED_ALLOWANCE_MS + 1);
    expect(await sweep()).toBe(0);

    ctx.clock.advance(windowMs() - 1000);
    expect(await sweep()).toBe(0);
    ctx.clock.advance(1000);
    expect(await sweep()).toBeGreaterThanOrEqual(20);
    expect(new Set(await statuses(ctx.t, fleet))).toEqual(new Set(["offline"]));
  });
});

describe("the serving period", () => {
  // One host at a time here: the breaker stays out of the way.
  const ctx = setup({ massOfflinePercent: 100 });
  const windowMs = () => ctx.t.config.offlineAfterS * 1000;

  it("gives every host a full window after the whole set of control planes comes back, however stale its last beat", async () => {
    const [creds] = await enrolledFleet(ctx.f, 1);
    await ctx.f.heartbeat(creds!);
    await ctx.t.runtime.deps.liveness.stop();
    // Every control plane gone for three windows: the serving period lapsed with the last of them.
    await ctx.t.stores.kv.del([SERVING_SINCE_KEY]);
    ctx.clock.advance(3 * windowMs());

    const restarted = new Liveness(ctx.t.runtime.deps, "restarted", ctx.clock.now());
    expect(await restarted.sweepOnce()).toBe(0);
    ctx.clock.advance(windowMs() - 1000);
    expect(await restarted.sweepOnce()).toBe(0);
    expect(await statuses(ctx.t, [creds!])).toEqual(["online"]);

    ctx.clock.advance(1000);
    expect(await restarted.sweepOnce()).toBe(1);
    expect(await statuses(ctx.t, [creds!])).toEqual(["offline"]);
    await restarted.stop();
  });

  it("gives no extra time when one control plane restarts while another kept serving", async () => {
    const [creds] = await enrolledFleet(ctx.f, 1);
    const veteran = new Liveness(ctx.t.runtime.deps, "veteran", new Date(0));
    await veteran.sweepOnce();
    await ctx.f.heartbeat(creds!);
    ctx.clock.advance(windowMs() + UNFLUSHED_ALLOWANCE_MS + 1);
    await veteran.stop();

    const newcomer = new Liveness(ctx.t.runtime.deps, "newcomer", ctx.clock.now());
    expect(await newcomer.sweepOnce()).toBe(1);
    expect(await statuses(ctx.t, [creds!])).toEqual(["offline"]);
    await newcomer.stop();
  });
});
