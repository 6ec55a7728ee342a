import { EventEmitter } from "node:events";
import type { Kv, ScoredMember, SetOptions, Subscription } from "./kv.js";

interface Entry {
  value: string;
  expiresAt: number | null;
}

const PURGE_INTERVAL_MS = 30_000;

/**
 * The in-process KV of the embedded default. Expired keys are invisible at
 * once and swept from memory periodically. Node runs each call to completion
 * on one thread, so every method is atomic as the port promises.
 */
export class MemoryKv implements Kv {
  private readonly strings = new Map<string, Entry>();
  private readonly sortedSets = new Map<string, Map<string, number>>();
  private readonly purgeTimer: NodeJS.Timeout;
  private readonly channels = new EventEmitter().setMaxListeners(0);

  constructor(private readonly now: () => number = Date.now) {
    this.purgeTimer = setInterval(() => this.purgeExpired(), PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    if (options.onlyIfAbsent && this.live(key)) return false;
    const expiresAt = options.ttlMs === undefined ? null : this.now() + options.ttlMs;
    this.strings.set(key, { value, expiresAt });
    return true;
  }

  async getDel(key: string): Promise<string | null> {
    const entry = this.live(key);
    this.strings.delete(key);
    return entry?.value ?? null;
  }

  async del(keys: string[]): Promise<void> {
    for (const key of keys) this.strings.delete(key);
  }

  async incrWithTtl(key: string, ttlMs: number): Promise<number> {
    const entry = this.live(key);
    const count = (entry ? Number(entry.value) : 0) + 1;
    this.strings.set(key, { value: String(count), expiresAt: entry ? entry.expiresAt : this.now() + ttlMs });
    return count;
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    const entry = this.live(key);
    if (entry) entry.expiresAt = this.now() + ttlMs;
    return entry !== undefined;
  }

  async zAdd(key: string, member: string, score: number): Promise<boolean> {
    const set = this.sortedSet(key);
    const added = !set.has(member);
    set.set(member, score);
    return added;
  }

  async zAddMany(key: string, entries: ScoredMember[]): Promise<string[]> {
    const set = this.sortedSet(key);
    const added: string[] = [];
    for (const { member, score } of entries) {
      const current = set.get(member);
      if (current === undefined) added.push(member);
      if (current === undefined || score > current) set.set(member, score);
    }
    return added;
  }

  async zRem(key: string, members: string[]): Promise<void> {
    const set = this.sortedSets.get(key);
    if (!set) return;
    for (const member of members) set.delete(member);
  }

  async zScores(key: string, members: string[]): Promise<(number | null)[]> {
    const set = this.sortedSets.get(key);
    return members.map((member) => set?.get(member) ?? null);
  }

  async zPopUpTo(key: string, maxScore: number, limit: number): Promise<ScoredMember[]> {
    const set = this.sortedSets.get(key);
    if (!set) return [];
    const due: ScoredMember[] = [];
    for (const [member, score] of set) {
      if (score <= maxScore) due.push({ member, score });
    }
    due.sort((a, b) => a.score - b.score);
    const popped = due.slice(0, limit);
    for (const { member } of popped) set.delete(member);
    return popped;
  }

  async zCard(key: string): Promise<number> {
    return this.sortedSets.get(key)?.size ?? 0;
  }
  async zCount(key: string, maxScore: number): Promise<number> {
    let count = 0;
    for (const score of this.sortedSets.get(key)?.values() ?? []) if (score <= maxScore) count++;
    return count;
  }


  async publish(channel: string, message: string): Promise<void> {
    this.channels.emit(channel, message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void, onDelivery: (reliable: boolean) => void): Promise<Subscription> {
    this.channels.on(channel, onMessage);
    // In one process nothing can be lost between publisher and subscriber.
    onDelivery(true);
    return { close: async () => void this.channels.off(channel, onMessage) };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.purgeTimer);
  }

  private live(key: string): Entry | undefined {
    const entry = this.strings.get(key);
    if (entry?.expiresAt != null && entry.expiresAt <= this.now()) {
      this.strings.delete(key);
      return undefined;
    }
    return entry;
  }

  private sortedSet(key: string): Map<string, number> {
    let set = this.sortedSets.get(key);
    if (!set) {
      set = new Map();
      this.sortedSets.set(key, set);
    }
    return set;
  }

  private purgeExpired(): void {
    const now = this.now();
    for (const [key, entry] of this.strings) {
      if (entry.expiresAt != null && entry.expiresAt <= now) this.strings.delete(key);
    }
  }
}
