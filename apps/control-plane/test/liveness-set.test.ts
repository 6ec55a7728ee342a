import { randomBytes } from "node:crypto";
import calculateSlot from "cluster-key-slot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../src/kv/kv.js";
import { LIVENESS_KEYS, LIVENESS_SHARDS, livenessShard } from "../src/services/kv-keys.js";
import { LivenessSet } from "../src/services/liveness-set.js";
import { createTestKv, kvMode } from "./support/stores.js";

const hostIds = (count: number) => Array.from({ length: count }, () => `host-${randomBytes(8).toString("hex")}`);

describe("the liveness set's shards on a Redis Cluster", () => {
  it("are 60 keys, each with a hash tag of its own", () => {
    expect(LIVENESS_KEYS).toHaveLength(LIVENESS_SHARDS);
    expect(new Set(LIVENESS_KEYS).size).toBe(LIVENESS_SHARDS);
    for (const key of LIVENESS_KEYS) expect(key).toMatch(/^liveness:\{[^{}]+\}$/);
  });

  it("sit in evenly spread hash slots, so masters owning equal runs of slots hold equal numbers of them", () => {
    for (const masters of [2, 3, 4, 5, 6, 10, 12]) {
      // What `redis-cli --cluster create` gives each master: runs of slots as equal as they can be.
      const firstSlots = Array.from({ length: masters }, (_, i) => Math.round((i * 16_384) / masters));
      const held = new Array<number>(masters).fill(0);
      for (const key of LIVENESS_KEYS) held[firstSlots.findLastIndex((first) => first <= calculateSlot(key))]! += 1;
      expect(held, `${masters} masters`).toEqual(new Array<number>(masters).fill(LIVENESS_SHARDS / masters));
    }
  });

  it("take a fleet's hosts in near-equal numbers", () => {
    const perShard = new Array<number>(LIVENESS_SHARDS).fill(0);
    for (const id of hostIds(60_000)) perShard[livenessShard(id)]! += 1;
    expect(Math.min(...perShard)).toBeGreaterThan(800);
    expect(Math.max(...perShard)).toBeLessThan(1_200);
  });
});

describe(`the sharded liveness set on this mode's KV (${kvMode})`, () => {
  let kv: Kv;
  let set: LivenessSet;
  beforeAll(async () => {
    kv = await createTestKv();
    set = new LivenessSet(kv);
  });
  afterAll(() => kv.close());

  it("answers each host's score in the order asked, whichever shards they sit in", async () => {
    const ids = hostIds(200);
    expect(new Set(ids.map(livenessShard)).size).toBeGreaterThan(30);
    await set.addMany(new Map(ids.slice(0, 150).map((id, i) => [id, 1_000 + i])));
    expect(await set.add(ids[150]!, 5)).toBe(true);
    expect(await set.add(ids[150]!, 6)).toBe(false);
    const scores = await set.scores(ids);
    expect(scores).toEqual(ids.map((_, i) => (i < 150 ? 1_000 + i : i === 150 ? 6 : null)));
    await set.remove(ids[0]!);
    expect(await set.scores([ids[0]!, ids[1]!])).toEqual([null, 1_001]);
  });

  it("names the newcomers of the shards it reached, and gives back the scores of a shard it could not reach", async () => {
    const ids = hostIds(100);
    const known = ids.slice(0, 50);
    await set.addMany(new Map(known.map((id) => [id, 1])));
    const downKey = LIVENESS_KEYS[livenessShard(ids[99]!)]!;
    const partial: Kv = Object.create(kv) as Kv;
    const outage = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    partial.zAddMany = (key, entries) => (key === downKey ? Promise.reject(outage) : kv.zAddMany(key, entries));

    const { added, unsent, error } = await new LivenessSet(partial).addMany(new Map(ids.map((id) => [id, 2])));
    const inDownShard = ids.filter((id) => LIVENESS_KEYS[livenessShard(id)] === downKey);
    expect(error).toBe(outage);
    expect([...unsent.keys()].sort()).toEqual([...inDownShard].sort());
    expect([...unsent.values()].every((score) => score === 2)).toBe(true);
    expect(added.sort()).toEqual(ids.slice(50).filter((id) => !inDownShard.includes(id)).sort());
  });

  it("pops due hosts from every shard, at most the given number from each, oldest first, and says when more are due", async () => {
    const own = await createTestKv();
    const popper = new LivenessSet(own);
    const ids = hostIds(300);
    await popper.addMany(new Map(ids.map((id, i) => [id, i])));
    expect(await popper.counts(99)).toEqual({ tracked: 300, due: 100 });

    const popped: { member: string; score: number }[] = [];
    for (let more = true; more; ) {
      const round = await popper.popDue(99, 2);
      expect(round.due.length).toBeLessThanOrEqual(2 * LIVENESS_SHARDS);
      popped.push(...round.due);
      more = round.more;
    }
    expect(popped.map((entry) => entry.member).sort()).toEqual(ids.slice(0, 100).sort());
    for (const entry of popped) expect(entry.score).toBe(ids.indexOf(entry.member));
    for (let shard = 0; shard < LIVENESS_SHARDS; shard++) {
      const scores = popped.filter((entry) => livenessShard(entry.member) === shard).map((entry) => entry.score);
      expect(scores).toEqual([...scores].sort((a, b) => a - b));
    }
    expect(await popper.counts(1_000)).toEqual({ tracked: 200, due: 200 });
    await own.close();
  });
});
