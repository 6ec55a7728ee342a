import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "@muster/testkit";
import { hosts } from "../src/db/schema/index.js";
import { KvUnavailableError, type Kv } from "../src/kv/kv.js";
import { RedisKv } from "../src/kv/redis.js";
import { isStoreUnavailable } from "../src/lib/store-errors.js";
import { CredentialCache, publishCredentialState } from "../src/services/credential-state.js";
import { CREDENTIAL_CHANGES_CHANNEL } from "../src/services/kv-keys.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";
import { killRedisServer, redisPidFile, services, startRedisServer } from "./support/redis-server.js";

const PREFIX = "reconnect:";

/**
 * The Redis adapter on a Redis of this test's own, killed and started again
 * (empty) on the same port. Runs in every storage mode: these are the Redis
 * adapter's promises, whatever KV the rest of the suite uses.
 */
describe("the Redis adapter when Redis goes away", () => {
  let t: TestApp;
  let f: Factories;
  let dir: string;
  let port: number;
  let kv: RedisKv;
  beforeAll(async () => {
    t = await startTestApp();
    f = new Factories(t);
    dir = mkdtempSync(join(tmpdir(), "muster-reconnect-"));
    port = await freePort();
    startRedisServer(dir, port);
    kv = await RedisKv.connect({ target: { url: `redis://127.0.0.1:${port}` }, keyPrefix: PREFIX });
  });
  afterAll(async () => {
    await kv.close();
    services(["stop", dir]);
    rmSync(dir, { recursive: true, force: true });
    await t.close();
  });

  it("has the credential cache bypass its copy while the announcement subscription is down, and trust it again only once the server holds the subscription", async () => {
    const creds = await f.enrolledHost();
    const family = async (value: string | null) =>
      t.stores.database.db.update(hosts).set({ credentialFamily: value }).where(eq(hosts.id, creds.host.id));

    // A connection that retries every 10 ms, so it is back before the subscriber (whose pauses have grown to seconds).
    const probe = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: 10 } });
    probe.on("error", () => {});
    await probe.connect();
    const channel = PREFIX + CREDENTIAL_CHANGES_CHANNEL;
    const signals: { reliable: boolean; serverSubscribers: Promise<number> }[] = [];
    const observed: Kv = Object.create(kv) as Kv;
    observed.subscribe = (name, onMessage, onDelivery) =>
      kv.subscribe(name, onMessage, (reliable) => {
        // Asked at the very moment the cache is told it may trust its copy: the server must hold the subscription by then.
        // While Redis is down the question fails (ECONNRESET); that answer is never read, so it must not go unhandled.
        const serverSubscribers = probe.pubSubNumSub(channel).then((counts) => counts[channel] ?? 0, () => -1);
        signals.push({ reliable, serverSubscribers });
        onDelivery(reliable);
      });

    const cache = new CredentialCache(t.stores.database.db, observed);
    await cache.start();
    const live = await cache.get(creds.host.id);
    expect(live.kind).toBe("live");
    expect(cache.peek(creds.host.id)).toEqual(live);

    await killRedisServer(redisPidFile(dir));
    await expect.poll(() => cache.trusted).toBe(false);
    expect(cache.peek(creds.host.id)).toBeUndefined();
    // Commands fail at once, as the port's unavailable error (callers answer 503 or take their fallback).
    const failed = await kv.get("any").catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(KvUnavailableError);
    expect(isStoreUnavailable(failed)).toBe(true);
    // Revoked behind its back while no announcement can arrive: the next read already sees it (from the database).
    await family(null);
    expect(await cache.get(creds.host.id)).toEqual({ kind: "none" });
    expect(cache.peek(creds.host.id)).toBeUndefined();

    startRedisServer(dir, port);
    await expect.poll(() => cache.trusted, { timeout: 10_000 }).toBe(true);
    expect(signals.map((signal) => signal.reliable)).toEqual([true, false, true]);
    expect(await signals[2]!.serverSubscribers).toBe(1);

    // Trusted again, and announcements reach it: a cached state is dropped the moment a change is published.
    await expect.poll(() => kv.ping().then(() => true, () => false), { timeout: 10_000 }).toBe(true);
    await family(live.kind === "live" ? live.family : null);
    expect(await cache.get(creds.host.id)).toEqual(live);
    expect(cache.peek(creds.host.id)).toEqual(live);
    await publishCredentialState(kv, creds.host.id, { kind: "deleted" });
    await expect.poll(() => cache.peek(creds.host.id)).toBeUndefined();
    expect(await cache.get(creds.host.id)).toEqual({ kind: "deleted" });

    await cache.stop();
    probe.destroy();
  });

  it("refuses at once to connect to a Redis, or a cluster, that is not there", async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    await expect(RedisKv.connect({ target: { url: nowhere }, keyPrefix: PREFIX })).rejects.toThrow(/ECONNREFUSED/);
    await expect(RedisKv.connect({ target: { clusterNodes: [nowhere] }, keyPrefix: PREFIX })).rejects.toThrow(/root nodes are unavailable/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
