/**
 * The key-value port. Two adapters implement it: Redis (production, shared by
 * every control-plane process; one Redis or a Redis Cluster) and an in-process
 * store (the embedded default). Both honour the same TTL and atomicity
 * promises, and one test suite runs against each.
 *
 * Each method touches one key, so on a cluster each runs on the one node that
 * owns the key's hash slot (del may take keys of many slots: it is not atomic).
 * A store that cannot be reached, or cannot serve the key's slot at the moment
 * (a cluster failing over), rejects with KvUnavailableError.
 */
export interface ScoredMember {
  member: string;
  score: number;
}

export interface SetOptions {
  ttlMs?: number;
  /** Write only when the key is absent (SET NX); the result says whether it wrote. */
  onlyIfAbsent?: boolean;
}

/** The KV store cannot serve the call right now; the caller answers 503 or takes its fallback. */
export class KvUnavailableError extends Error {
  readonly code = "KV_UNAVAILABLE";
}

export interface Subscription {
  close(): Promise<void>;
}

export interface Kv {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Read and delete in one atomic step: of concurrent callers exactly one sees the value. */
  getDel(key: string): Promise<string | null>;
  del(keys: string[]): Promise<void>;
  /**
   * Adds one to a counter and returns the new count, in one atomic step. The
   * first increment gives the key `ttlMs` to live; later ones keep that expiry.
   */
  incrWithTtl(key: string, ttlMs: number): Promise<number>;
  /** Gives an existing key `ttlMs` to live from now, leaving its value alone; false when the key is absent. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** Set a member's score in a sorted set; true when the member was not there before. */
  zAdd(key: string, member: string, score: number): Promise<boolean>;
  /**
   * Sets many members' scores at once, each only upwards (a late batch never
   * moves a score back); returns the members that were not there before.
   */
  zAddMany(key: string, entries: ScoredMember[]): Promise<string[]>;
  zRem(key: string, members: string[]): Promise<void>;
  zScores(key: string, members: string[]): Promise<(number | null)[]>;
  /** Atomically remove and return up to `limit` members whose score is ≤ maxScore. */
  zPopUpTo(key: string, maxScore: number, limit: number): Promise<ScoredMember[]>;
  zCard(key: string): Promise<number>;
  /** How many members have a score ≤ maxScore. */
  zCount(key: string, maxScore: number): Promise<number>;
  /** Delivers a message to every current subscriber of the channel, in every process. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls `onMessage` for each message published on the channel. `onDelivery`
   * says whether delivery is reliable right now: false while the connection is
   * down (messages may be lost), true once it is back; caches fed by the
   * channel must not be trusted in between.
   */
  subscribe(channel: string, onMessage: (message: string) => void, onDelivery: (reliable: boolean) => void): Promise<Subscription>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
