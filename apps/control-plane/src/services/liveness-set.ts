import type { Kv, ScoredMember } from "../kv/kv.js";
import { LIVENESS_KEYS, livenessShard } from "./kv-keys.js";

/** What a batch of scores did: hosts that were not in the set before, and the scores of shards that could not be reached. */
export interface AddedScores {
  added: string[];
  unsent: Map<string, number>;
  /** Why some shards could not be reached (the first failure). */
  error?: unknown;
}

/**
 * The liveness sorted set, split in LIVENESS_SHARDS shards by host ID (see
 * kv-keys.ts), so that on a Redis Cluster every master takes its share of the
 * fleet's beats. Each host's score lives in one shard, so every per-host
 * promise of a single sorted set holds; calls that span the fleet go to the
 * shards at once.
 */
export class LivenessSet {
  constructor(private readonly kv: Kv) {}

  /** Sets a host's last beat; true when it was not in the set. */
  add(hostId: string, at: number): Promise<boolean> {
    return this.kv.zAdd(keyOf(hostId), hostId, at);
  }

  /**
   * Raises each host's score (never lowers one), shard by shard. A shard that
   * fails does not fail the others: their newcomers are reported, and the
   * failed shards' scores come back as unsent.
   */
  async addMany(scores: Map<string, number>): Promise<AddedScores> {
    const shards = [...byShard([...scores.keys()])];
    const results = await Promise.allSettled(
      shards.map(([shard, ids]) =>
        this.kv.zAddMany(
          LIVENESS_KEYS[shard]!,
          ids.map((id) => ({ member: id, score: scores.get(id)! })),
        ),
      ),
    );
    const outcome: AddedScores = { added: [], unsent: new Map() };
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        outcome.added.push(...result.value);
        return;
      }
      outcome.error ??= result.reason;
      for (const id of shards[i]![1]) outcome.unsent.set(id, scores.get(id)!);
    });
    return outcome;
  }

  remove(hostId: string): Promise<void> {
    return this.kv.zRem(keyOf(hostId), [hostId]);
  }

  /** Each host's last beat in the set, in the order given; null for a host not in it. */
  async scores(hostIds: string[]): Promise<(number | null)[]> {
    const found = new Map<string, number | null>();
    await Promise.all(
      [...byShard(hostIds)].map(async ([shard, ids]) => {
        const scores = await this.kv.zScores(LIVENESS_KEYS[shard]!, ids);
        ids.forEach((id, i) => found.set(id, scores[i] ?? null));
      }),
    );
    return hostIds.map((id) => found.get(id) ?? null);
  }

  /**
   * Atomically removes and returns, from every shard, up to `perShard` hosts
   * whose last beat is at or before maxScore (oldest first within a shard);
   * `more` says whether a shard may hold further such hosts.
   */
  async popDue(maxScore: number, perShard: number): Promise<{ due: ScoredMember[]; more: boolean }> {
    const popped = await Promise.all(LIVENESS_KEYS.map((key) => this.kv.zPopUpTo(key, maxScore, perShard)));
    return { due: popped.flat(), more: popped.some((shard) => shard.length === perShard) };
  }

  /** How many hosts the set holds, and how many of them last beat at or before maxScore. */
  async counts(maxScore: number): Promise<{ tracked: number; due: number }> {
    const [tracked, due] = await Promise.all([
      Promise.all(LIVENESS_KEYS.map((key) => this.kv.zCard(key))),
      Promise.all(LIVENESS_KEYS.map((key) => this.kv.zCount(key, maxScore))),
    ]);
    const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
    return { tracked: sum(tracked), due: sum(due) };
  }
}

function keyOf(hostId: string): string {
  return LIVENESS_KEYS[livenessShard(hostId)]!;
}

/** The hosts grouped by their shard. */
function byShard(hostIds: string[]): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const id of hostIds) {
    const shard = livenessShard(id);
    const group = groups.get(shard);
    if (group) group.push(id);
    else groups.set(shard, [id]);
  }
  return groups;
}
