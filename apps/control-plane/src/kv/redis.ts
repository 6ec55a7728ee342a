import { Redis } from "ioredis";
import type { Kv, ScoredMember, SetOptions, Subscription } from "./kv.js";

// Runs inside Redis, so reading the due members and removing them is one atomic step.
const Z_POP_UP_TO = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
return due`;

// ZADD GT only ever raises a score; its reply counts the members that were new.
const Z_ADD_MANY = `
local added = {}
for i = 1, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'GT', ARGV[i], ARGV[i + 1]) == 1 then added[#added + 1] = ARGV[i + 1] end
end
return added`;

// The expiry is set only when the key has none (the first increment), so a window never slides.
const INCR_WITH_TTL = `
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count`;

export interface RedisKvOptions {
  url: string;
  /** Prepended to every key, so several deployments or test runs can share one Redis. */
  keyPrefix: string;
}

export class RedisKv implements Kv {
  private readonly redis: Redis;
  private readonly keyPrefix: string;

  constructor(options: RedisKvOptions) {
    this.keyPrefix = options.keyPrefix;
    this.redis = new Redis(options.url, {
      keyPrefix: options.keyPrefix,
      lazyConnect: true,
      maxRetriesPerRequest: 2,
      // Fail fast while Redis is away, so callers answer 503 instead of hanging.
      enableOfflineQueue: false,
    });
    this.redis.defineCommand("zPopUpTo", { numberOfKeys: 1, lua: Z_POP_UP_TO });
    this.redis.defineCommand("zAddMany", { numberOfKeys: 1, lua: Z_ADD_MANY });
    this.redis.defineCommand("incrWithTtl", { numberOfKeys: 1, lua: INCR_WITH_TTL });
    // ioredis reconnects by itself; errors reach callers through rejected commands.
    this.redis.on("error", () => {});
  }

  async connect(): Promise<void> {
    await this.redis.connect();
  }

  async get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const ttl = options.ttlMs === undefined ? undefined : Math.max(1, Math.ceil(options.ttlMs));
    let reply: string | null;
    if (ttl !== undefined && options.onlyIfAbsent) reply = await this.redis.set(key, value, "PX", ttl, "NX");
    else if (ttl !== undefined) reply = await this.redis.set(key, value, "PX", ttl);
    else if (options.onlyIfAbsent) reply = await this.redis.set(key, value, "NX");
    else reply = await this.redis.set(key, value);
    return reply === "OK";
  }

  async getDel(key: string): Promise<string | null> {
    return this.redis.getdel(key);
  }

  async del(keys: string[]): Promise<void> {
    if (keys.length > 0) await this.redis.del(...keys);
  }

  async incrWithTtl(key: string, ttlMs: number): Promise<number> {
    return (await (this.redis as unknown as RedisWithScripts).incrWithTtl(key, Math.max(1, Math.ceil(ttlMs)))) as number;
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.pexpire(key, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async zAdd(key: string, member: string, score: number): Promise<boolean> {
    return (await this.redis.zadd(key, score, member)) === 1;
  }

  async zAddMany(key: string, entries: ScoredMember[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const args = entries.flatMap(({ member, score }) => [score, member]);
    return (await (this.redis as unknown as RedisWithScripts).zAddMany(key, ...args)) as string[];
  }

  async zRem(key: string, members: string[]): Promise<void> {
    if (members.length > 0) await this.redis.zrem(key, ...members);
  }

  async zScores(key: string, members: string[]): Promise<(number | null)[]> {
    if (members.length === 0) return [];
    const scores = await this.redis.zmscore(key, ...members);
    return scores.map((score) => (score === null ? null : Number(score)));
  }

  async zPopUpTo(key: string, maxScore: number, limit: number): Promise<ScoredMember[]> {
    const flat = (await (this.redis as unknown as RedisWithScripts).zPopUpTo(key, maxScore, limit)) as string[];
    const popped: ScoredMember[] = [];
    for (let i = 0; i < flat.length; i += 2) popped.push({ member: flat[i]!, score: Number(flat[i + 1]) });
    return popped;
  }

  async zCard(key: string): Promise<number> {
    return this.redis.zcard(key);
  }

  async zCount(key: string, maxScore: number): Promise<number> {
    return this.redis.zcount(key, "-inf", maxScore);
  }

  async publish(channel: string, message: string): Promise<void> {
    // Channels are not keys: ioredis does not prefix them, so we do.
    await this.redis.publish(this.keyPrefix + channel, message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void, onDelivery: (reliable: boolean) => void): Promise<Subscription> {
    const name = this.keyPrefix + channel;
    // A subscribed connection can do nothing else, so each subscription gets its own; it resubscribes by itself after a reconnect.
    const subscriber = this.redis.duplicate({ enableOfflineQueue: true });
    subscriber.on("error", () => {});
    subscriber.on("message", (from: string, message: string) => {
      if (from === name) onMessage(message);
    });
    subscriber.on("close", () => onDelivery(false));
    await subscriber.connect();
    await subscriber.subscribe(name);
    subscriber.on("ready", () => onDelivery(true));
    onDelivery(true);
    return { close: async () => void (await subscriber.quit().catch(() => subscriber.disconnect())) };
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

interface RedisWithScripts {
  zPopUpTo(key: string, maxScore: number, limit: number): Promise<unknown>;
  zAddMany(key: string, ...scoresAndMembers: (string | number)[]): Promise<unknown>;
  incrWithTtl(key: string, ttlMs: number): Promise<unknown>;
}
