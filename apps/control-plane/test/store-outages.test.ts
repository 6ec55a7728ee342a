import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import type { Kv } from "../src/kv/kv.js";
import type { ServiceDeps } from "../src/services/context.js";
import { hashSecret } from "../src/lib/secrets.js";
import { LIVENESS_KEYS, registrationTokenKey, SERVING_SEEN_KEY, SERVING_SINCE_KEY } from "../src/services/kv-keys.js";
import { Liveness, UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, machineSpecs } from "./support/factories.js";

/**
 * The store with `before(method, args)` run ahead of each of its method calls:
 * what it throws fails the call at once, what it returns (a promise) is waited
 * for, and a rejection fails the call.
 */
function intercepted<T extends object>(store: T, before: (method: string, args: unknown[]) => Promise<void> | void): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const waiting = before(String(property), args);
        return waiting ? waiting.then(() => method.apply(target, args)) : method.apply(target, args);
      };
    },
  });
}

/**
 * A store that can be cut off: while `down`, every method call fails the way a
 * dropped connection does, as a rejected promise (the KV port's methods are
 * async) or thrown at once (drizzle's query builders are built synchronously).
 */
function switchable<T extends object>(store: T, fails: "reject" | "throw"): { store: T; down: boolean } {
  const state = { store, down: false };
  state.store = intercepted(store, () => {
    if (!state.down) return;
    const error = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1"), { code: "ECONNREFUSED" });
    if (fails === "throw") throw error;
    return Promise.reject(error);
  });
  return state;
}

/**
 * No host turns offline because a store was down: after a control plane sees
 * an outage end, the fleet gets a full offline window to report in again.
 */
describe("offline transitions after a store outage", () => {
  const clock = new FakeClock();
  let t: TestApp;
  let f: Factories;
  const windowMs = () => t.config.offlineAfterS * 1000;
  const status = async (creds: HostCredentials) => (await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.status;

  beforeAll(async () => {
    // One host at a time here: the mass-silence breaker stays out of the way.
    t = await startTestApp({ clock, config: { massOfflinePercent: 100 } });
    f = new Factories(t);
  });
  afterAll(() => t.close());

  /** A host that beat once, and a control plane (its own process, as far as liveness goes) serving since before that beat. */
  async function servingPlane(name: string) {
    const kv = switchable(t.stores.kv, "reject");
    const db = switchable(t.stores.database.db, "throw");
    const deps: ServiceDeps = { ...t.runtime.deps, kv: kv.store, db: db.store };
    const plane = new Liveness(deps, name, clock.now());
    expect(await plane.sweepOnce()).toBe(0);
    const creds = await f.enrolledHost();
    expect((await f.heartbeat(creds)).status).toBe(204);
    return { plane, kv, db, creds };
  }

  /**
   * The host stays silent: no offline mark until the grace after the outage
   * has passed (a window, plus three times the outage for agents' retry
   * pauses, at most a minute), then the mark.
   */
  async function expectFreshWindow(plane: Liveness, creds: HostCredentials, outageMs: number) {
    const graceMs = windowMs() + Math.min(60_000, 3 * outageMs);
    expect(await plane.sweepOnce()).toBe(0);
    clock.advance(graceMs - 1000);
    expect(await plane.sweepOnce()).toBe(0);
    expect(await status(creds)).toBe("online");
    clock.advance(1000 + UNFLUSHED_ALLOWANCE_MS);
    expect(await plane.sweepOnce()).toBe(1);
    expect(await status(creds)).toBe("offline");
  }

  it("gives the fleet a fresh window once the KV store is reachable again", async () => {
    const { plane, kv, creds } = await servingPlane("kv-outage");
    kv.down = true;
    // Down past the host's deadline: its beats were refused meanwhile, so its last beat is stale through no fault of its own.
    clock.advance(20_000);
    await expect(plane.sweepOnce()).rejects.toThrow(/ECONNREFUSED/);
    clock.advance(windowMs());
    kv.down = false;

    await expectFreshWindow(plane, creds, 20_000 + windowMs());
    await plane.stop();
  });

  it("gives the fleet a fresh window once the database is reachable again", async () => {
    const { plane, db, creds } = await servingPlane("db-outage");
    db.down = true;
    clock.advance(10_000);
    await expect(plane.sweepOnce()).rejects.toThrow(/ECONNREFUSED/);
    db.down = false;

    await expectFreshWindow(plane, creds, 10_000);
    await plane.stop();
  });

  it("gives the fleet a fresh window when the KV store comes back without its data, however briefly it was away", async () => {
    const { plane, creds } = await servingPlane("kv-data-lost");
    clock.advance(windowMs() + UNFLUSHED_ALLOWANCE_MS + 1);
    // A restarted Redis without persistence, between two sweeps: the serving period and the liveness set are gone.
    await t.stores.kv.del([SERVING_SINCE_KEY, SERVING_SEEN_KEY, ...LIVENESS_KEYS]);

    await expectFreshWindow(plane, creds, windowMs() + UNFLUSHED_ALLOWANCE_MS + 1);
    await plane.stop();
  });

  it("gives hosts time for their retry pauses after every control plane was gone", async () => {
    const { plane, creds } = await servingPlane("last-one-out");
    await plane.stop();
    clock.advance(20_000);
    // The serving period lapsed with the last process; when it was last seen stays.
    await t.stores.kv.del([SERVING_SINCE_KEY]);

    const back = new Liveness(t.runtime.deps, "first-one-back", clock.now());
    await expectFreshWindow(back, creds, 20_000);
    await back.stop();
  });

  it("never writes back an old period over a new one another process started between its read and its refresh", async () => {
    const kv = t.stores.kv;
    await kv.set(SERVING_SINCE_KEY, String(clock.now().getTime() - 1_000), { ttlMs: 10_000 });
    const newPeriod = String(clock.now().getTime() + 30_000);
    // Another process starts a new period just as this one refreshes the key it read.
    const racing = intercepted(kv, async (method, [key]) => {
      if ((method === "set" || method === "expire") && key === SERVING_SINCE_KEY) await kv.set(SERVING_SINCE_KEY, newPeriod, { ttlMs: 10_000 });
    });
    const plane = new Liveness({ ...t.runtime.deps, kv: racing }, "refresher", clock.now());
    await plane.sweepOnce();
    expect(await kv.get(SERVING_SINCE_KEY)).toBe(newPeriod);
    await plane.stop();
  });

  it("shares the new window with the process holding the sweeper lease, which did not see the outage itself", async () => {
    const { plane: holder, creds } = await servingPlane("lease-holder");
    const cutOff = switchable(t.stores.kv, "reject");
    const other = new Liveness({ ...t.runtime.deps, kv: cutOff.store }, "cut-off", clock.now());
    expect(await other.sweepOnce()).toBe(0);
    cutOff.down = true;
    clock.advance(5_000);
    await expect(other.sweepOnce()).rejects.toThrow(/ECONNREFUSED/);
    clock.advance(windowMs());
    cutOff.down = false;
    expect(await other.sweepOnce()).toBe(0);

    await expectFreshWindow(holder, creds, 5_000 + windowMs());
    await other.stop();
    await holder.stop();
  });
});

describe("heartbeats while the KV store is down", () => {
  let t: TestApp;
  let f: Factories;
  let cutOff: TestApp;
  let kv: { store: Kv; down: boolean };

  beforeAll(async () => {
    t = await startTestApp();
    f = new Factories(t);
    kv = switchable(t.stores.kv, "reject");
    // A second control plane on the same stores, whose KV connection the test cuts.
    cutOff = await startTestApp({ stores: { ...t.stores, kv: kv.store } });
  });
  afterAll(async () => {
    kv.down = false;
    await cutOff.close();
    await t.close();
  });

  const beat = (creds: HostCredentials) => cutOff.http.post(`/v1/hosts/${creds.host.id}/heartbeat`, { hostToken: creds.token });

  it("accepts the beats of hosts this process knows and serves operator reads, and answers other hosts 503 with Retry-After until the store is back", async () => {
    const known = await f.enrolledHost();
    const newcomer = await f.enrolledHost();
    expect((await beat(known)).status).toBe(204);

    kv.down = true;
    expect((await beat(known)).status).toBe(204);
    const refused = await beat(newcomer);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("unavailable");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);

    // Operators still read the fleet, with the beat times the database holds.
    const read = await cutOff.http.get(`/v1/hosts/${known.host.id}`, { key: t.adminKey });
    expect(read.status).toBe(200);
    expect(read.body.status).toBe("online");

    kv.down = false;
    expect((await beat(newcomer)).status).toBe(204);
    expect((await t.http.get(`/v1/hosts/${newcomer.host.id}`, { key: t.adminKey })).body.status).toBe("online");
  });
});

describe("registration tokens the KV store lost", () => {
  let t: TestApp;
  let f: Factories;
  beforeAll(async () => {
    t = await startTestApp();
    f = new Factories(t);
  });
  afterAll(() => t.close());

  it("still registers once with a live token the KV store no longer holds (restarted without its data, a process killed mid-registration)", async () => {
    const { registration_token } = await f.regularHost();
    await t.stores.kv.del([registrationTokenKey(hashSecret(registration_token))]);

    const creds = await f.register(registration_token);
    expect((await f.heartbeat(creds)).status).toBe(204);
    // From another machine: the same machine's retry would get the same credentials back (registration-retry.test.ts).
    const again = await t.http.post("/v1/hosts/register", { body: { token: registration_token, ...machineSpecs, hostname: "another-machine" } });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("unauthorized");
  });
});
