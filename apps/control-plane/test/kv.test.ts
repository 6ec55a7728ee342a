import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../src/kv/kv.js";
import { MemoryKv } from "../src/kv/memory.js";
import { createTestKv, kvMode } from "./support/stores.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`KV port on this mode's adapter (${kvMode})`, () => {
  let kv: Kv;
  beforeAll(async () => {
    kv = await createTestKv();
  });
  afterAll(() => kv.close());

  it("sets, gets and deletes", async () => {
    expect(await kv.set("a", "1")).toBe(true);
    expect(await kv.get("a")).toBe("1");
    await kv.del(["a"]);
    expect(await kv.get("a")).toBeNull();
  });

  it("deletes many keys at once, whichever hash slots they sit in", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `many-${i}`);
    for (const key of keys) await kv.set(key, "v");
    await kv.del(keys);
    expect(await Promise.all(keys.map((key) => kv.get(key)))).toEqual(keys.map(() => null));
  });

  it("writes only-if-absent once", async () => {
    expect(await kv.set("nx", "first", { onlyIfAbsent: true })).toBe(true);
    expect(await kv.set("nx", "second", { onlyIfAbsent: true })).toBe(false);
    expect(await kv.get("nx")).toBe("first");
  });

  it("forgets a key when its TTL runs out", async () => {
    await kv.set("ttl", "v", { ttlMs: 60 });
    expect(await kv.get("ttl")).toBe("v");
    await sleep(150);
    expect(await kv.get("ttl")).toBeNull();
    expect(await kv.set("ttl", "again", { onlyIfAbsent: true, ttlMs: 1000 })).toBe(true);
  });

  it("extends a key's life without touching its value, and says when there is no key", async () => {
    await kv.set("exp", "v", { ttlMs: 60 });
    expect(await kv.expire("exp", 10_000)).toBe(true);
    await sleep(150);
    expect(await kv.get("exp")).toBe("v");
    expect(await kv.expire("absent", 10_000)).toBe(false);
    expect(await kv.get("absent")).toBeNull();
  });

  it("hands a value to exactly one of many concurrent get-and-deletes", async () => {
    await kv.set("once", "secret");
    const results = await Promise.all(Array.from({ length: 40 }, () => kv.getDel("once")));
    expect(results.filter((value) => value === "secret")).toHaveLength(1);
    expect(results.filter((value) => value === null)).toHaveLength(39);
  });

  it("counts atomically under concurrency, and the first increment's TTL ends the count", async () => {
    const counts = await Promise.all(Array.from({ length: 40 }, () => kv.incrWithTtl("counter", 200)));
    expect([...counts].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    await sleep(250);
    expect(await kv.incrWithTtl("counter", 200)).toBe(1);
  });

  it("keeps a sorted set: add reports newcomers, scores read back, pop takes only the due members", async () => {
    expect(await kv.zAdd("z", "h1", 100)).toBe(true);
    expect(await kv.zAdd("z", "h1", 150)).toBe(false);
    await kv.zAdd("z", "h2", 200);
    await kv.zAdd("z", "h3", 300);
    expect(await kv.zScores("z", ["h1", "h2", "nope"])).toEqual([150, 200, null]);
    expect(await kv.zCard("z")).toBe(3);
    expect([await kv.zCount("z", 149), await kv.zCount("z", 200), await kv.zCount("z", 1e15)]).toEqual([0, 2, 3]);

    expect(await kv.zPopUpTo("z", 200, 10)).toEqual([
      { member: "h1", score: 150 },
      { member: "h2", score: 200 },
    ]);
    expect(await kv.zPopUpTo("z", 200, 10)).toEqual([]);
    expect(await kv.zScores("z", ["h3"])).toEqual([300]);
    await kv.zRem("z", ["h3"]);
    expect(await kv.zCard("z")).toBe(0);
  });

  it("adds many members at once, only ever raising a score, and names the newcomers", async () => {
    await kv.zAdd("zm", "old", 500);
    const added = await kv.zAddMany("zm", [
      { member: "old", score: 400 },
      { member: "new-1", score: 100 },
      { member: "new-2", score: 200 },
    ]);
    expect(added.sort()).toEqual(["new-1", "new-2"]);
    expect(await kv.zScores("zm", ["old", "new-1", "new-2"])).toEqual([500, 100, 200]);
    expect(await kv.zAddMany("zm", [{ member: "old", score: 600 }])).toEqual([]);
    expect(await kv.zScores("zm", ["old"])).toEqual([600]);
    expect(await kv.zAddMany("zm", [])).toEqual([]);
  });

  it("pops at most the limit, oldest first, and never the same member twice under concurrency", async () => {
    for (let i = 0; i < 50; i++) await kv.zAdd("zl", `m${i}`, i);
    const batches = await Promise.all(Array.from({ length: 10 }, () => kv.zPopUpTo("zl", 1000, 7)));
    const popped = batches.flat().map((entry) => entry.member);
    expect(new Set(popped).size).toBe(popped.length);
    expect(popped).toHaveLength(50);
    for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(7);
  });

  it("delivers published messages to subscribers until they close, and says delivery is reliable", async () => {
    const received: string[] = [];
    const deliveries: boolean[] = [];
    const subscription = await kv.subscribe("news", (message) => received.push(message), (reliable) => deliveries.push(reliable));
    expect(deliveries).toEqual([true]);
    await kv.publish("news", "first");
    await kv.publish("other", "not for us");
    await expect.poll(() => received).toEqual(["first"]);
    await subscription.close();
    await kv.publish("news", "after close");
    await sleep(50);
    expect(received).toEqual(["first"]);
  });

  it("answers ping", async () => {
    await expect(kv.ping()).resolves.toBeUndefined();
  });
});

describe("in-process KV expiry", () => {
  it("is exact to the millisecond of its clock", async () => {
    let now = 1_000;
    const kv = new MemoryKv(() => now);
    await kv.set("k", "v", { ttlMs: 500 });
    now = 1_499;
    expect(await kv.get("k")).toBe("v");
    now = 1_500;
    expect(await kv.get("k")).toBeNull();
    expect(await kv.getDel("k")).toBeNull();
    await kv.close();
  });

  it("keeps a counter's first expiry: later increments do not slide it", async () => {
    let now = 1_000;
    const kv = new MemoryKv(() => now);
    expect(await kv.incrWithTtl("c", 500)).toBe(1);
    now = 1_400;
    expect(await kv.incrWithTtl("c", 500)).toBe(2);
    now = 1_500;
    expect(await kv.incrWithTtl("c", 500)).toBe(1);
    await kv.close();
  });
});
