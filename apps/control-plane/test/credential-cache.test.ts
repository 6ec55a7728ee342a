import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../src/kv/kv.js";
import { CredentialCache, publishCredentialState } from "../src/services/credential-state.js";
import { credentialStateKey } from "../src/services/kv-keys.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";

describe("the per-process credential cache", () => {
  let t: TestApp;
  let f: Factories;
  beforeAll(async () => {
    t = await startTestApp();
    f = new Factories(t);
  });
  afterAll(() => t.close());

  /** The mode's KV, but with a hand on the subscription's delivery signal. */
  function observedKv(): { kv: Kv; delivery: (reliable: boolean) => void } {
    let signal: (reliable: boolean) => void = () => {};
    const kv: Kv = Object.create(t.stores.kv) as Kv;
    kv.subscribe = async (channel, onMessage, onDelivery) => {
      signal = onDelivery;
      return t.stores.kv.subscribe(channel, onMessage, onDelivery);
    };
    return { kv, delivery: (reliable) => signal(reliable) };
  }

  it("serves a host's state from memory and drops it when a change is announced", async () => {
    const creds = await f.enrolledHost();
    const cache = new CredentialCache(t.stores.database.db, t.stores.kv);
    await cache.start();
    const live = await cache.get(creds.host.id);
    expect(live.kind).toBe("live");

    // Changed behind the cache's back (no announcement): memory still answers.
    await t.stores.kv.set(credentialStateKey(creds.host.id), "!none");
    expect(await cache.get(creds.host.id)).toEqual(live);

    // Announced: gone from memory at once.
    await publishCredentialState(t.stores.kv, creds.host.id, { kind: "deleted" });
    await expect.poll(() => cache.get(creds.host.id)).toEqual({ kind: "deleted" });
    await cache.stop();
  });

  it("stops trusting memory while delivery of announcements is in doubt, and starts afresh after", async () => {
    const creds = await f.enrolledHost();
    const { kv, delivery } = observedKv();
    const cache = new CredentialCache(t.stores.database.db, kv);
    await cache.start();
    const live = await cache.get(creds.host.id);

    delivery(false);
    await t.stores.kv.set(credentialStateKey(creds.host.id), "!none");
    expect(await cache.get(creds.host.id)).toEqual({ kind: "none" });

    delivery(true);
    await t.stores.kv.set(credentialStateKey(creds.host.id), live.kind === "live" ? live.family : "");
    expect(await cache.get(creds.host.id)).toEqual(live);
    await cache.stop();
  });
});
