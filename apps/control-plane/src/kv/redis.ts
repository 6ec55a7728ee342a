import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  defineScript,
  DisconnectsClientError,
  ErrorReply,
  MaxCommandRedirectionsError,
  ReconnectStrategyError,
  RedisClient,
  RedisCluster,
  RootNodesUnavailableError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
  type CommandParser,
  type RedisArgument,
  type RedisClientType,
  type RedisClusterType,
} from "redis";
import { KvUnavailableError, type Kv, type ScoredMember, type SetOptions, type Subscription } from "./kv.js";
import { clusterSubscription, singleSubscription, type RedisSubscription } from "./redis-pubsub.js";

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

// Each script takes one key, so on a cluster it runs whole on the node owning that key's slot.
const SCRIPTS = {
  zPopUpTo: defineScript({
    SCRIPT: Z_POP_UP_TO,
    NUMBER_OF_KEYS: 1,
    parseCommand(parser: CommandParser, key: RedisArgument, maxScore: number, limit: number) {
      parser.pushKey(key);
      parser.push(String(maxScore), String(limit));
    },
    transformReply: (reply: string[]) => reply,
  }),
  zAddMany: defineScript({
    SCRIPT: Z_ADD_MANY,
    NUMBER_OF_KEYS: 1,
    parseCommand(parser: CommandParser, key: RedisArgument, entries: ScoredMember[]) {
      parser.pushKey(key);
      for (const { member, score } of entries) parser.push(String(score), member);
    },
    transformReply: (reply: string[]) => reply,
  }),
  incrWithTtl: defineScript({
    SCRIPT: INCR_WITH_TTL,
    NUMBER_OF_KEYS: 1,
    parseCommand(parser: CommandParser, key: RedisArgument, ttlMs: number) {
      parser.pushKey(key);
      parser.push(String(ttlMs));
    },
    transformReply: (reply: number) => reply,
  }),
};

type Scripts = typeof SCRIPTS;
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- node-redis's "no modules, no functions"
export type Client = RedisClientType<{}, {}, Scripts>;
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- as above
export type Cluster = RedisClusterType<{}, {}, Scripts>;

/** The commands the adapter sends: one Redis and a cluster (which routes each by its key's slot) both take them. */
type Commands = Pick<Client, "get" | "set" | "getDel" | "del" | "pExpire" | "zAdd" | "zRem" | "zmScore" | "zCard" | "zCount" | keyof Scripts>;

/** One Redis (REDIS_URL), or a Redis Cluster reached through any of its nodes (REDIS_CLUSTER_NODES). */
export type RedisTarget = { url: string } | { clusterNodes: string[] };

export interface RedisKvOptions {
  target: RedisTarget;
  /** Prepended to every key and channel, so several deployments or test runs can share one Redis. */
  keyPrefix: string;
}

/** Waits between reconnection attempts: doubling from 50 ms up to 2 s, with jitter so processes do not reconnect in step. */
function backoffMs(retries: number): number {
  return Math.min(2 ** retries * 50, 2_000) + Math.floor(Math.random() * 200);
}

/** Failures that mean the store (or the node owning a key's slot) cannot be reached, not that the call was wrong. */
const CONNECTION_ERRORS = [
  ClientOfflineError,
  ClientClosedError,
  // A command waiting on a node's connection when the cluster client dropped that node (it was failed over).
  DisconnectsClientError,
  SocketClosedUnexpectedlyError,
  ConnectionTimeoutError,
  SocketTimeoutError,
  TimeoutError,
  ReconnectStrategyError,
  RootNodesUnavailableError,
  MaxCommandRedirectionsError,
];
// A cluster failing over or resharding a slot, a replica that cannot reach its master, a Redis still loading its data.
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY)\b/;

function translated(error: unknown): unknown {
  const unavailable =
    CONNECTION_ERRORS.some((type) => error instanceof type) || (error instanceof ErrorReply && UNAVAILABLE_REPLY.test(error.message));
  if (!unavailable) return error;
  // node-redis's errors all carry the name "Error"; the class says what happened when the message is empty (a timeout).
  const { message, constructor } = error as Error;
  return new KvUnavailableError(`Redis: ${message || constructor.name}`, { cause: error });
}

/**
 * The KV port on Redis, through node-redis. Commands fail at once while the
 * connection to the key's node is down (no offline queue), so callers answer
 * 503 instead of hanging; the client reconnects by itself, and a cluster
 * client follows failovers and resharding (MOVED) to the slot's new master.
 * Pub/sub: see redis-pubsub.ts.
 */
export class RedisKv implements Kv {
  private readonly subscriptions = new Set<RedisSubscription>();

  private constructor(
    private readonly commands: Commands,
    private readonly connection:
      | { kind: "single"; client: Client; /** Another connection to the same Redis, for a subscription. */ connect: () => Promise<Client> }
      | { kind: "cluster"; cluster: Cluster },
    private readonly keyPrefix: string,
  ) {}

  /** Connects, or fails at once when a node cannot be reached; once connected, lost connections are retried without end. */
  static async connect(options: RedisKvOptions): Promise<RedisKv> {
    const { target, keyPrefix } = options;
    if ("url" in target) {
      const client = await connectSingle(target.url, keyPrefix);
      return new RedisKv(client, { kind: "single", client, connect: () => connectSingle(target.url, keyPrefix) }, keyPrefix);
    }
    const cluster = await connectCluster(target.clusterNodes, keyPrefix);
    return new RedisKv(cluster, { kind: "cluster", cluster }, keyPrefix);
  }

  async get(key: string): Promise<string | null> {
    return this.run(() => this.commands.get(key));
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const ttl = options.ttlMs === undefined ? undefined : Math.max(1, Math.ceil(options.ttlMs));
    const reply = await this.run(() =>
      this.commands.set(key, value, {
        ...(ttl === undefined ? {} : { expiration: { type: "PX", value: ttl } }),
        ...(options.onlyIfAbsent ? { condition: "NX" } : {}),
      }),
    );
    return reply === "OK";
  }

  async getDel(key: string): Promise<string | null> {
    return this.run(() => this.commands.getDel(key));
  }

  async del(keys: string[]): Promise<void> {
    // On a cluster, node-redis splits a DEL of keys in several slots into one DEL per slot.
    if (keys.length > 0) await this.run(() => this.commands.del(keys));
  }

  async incrWithTtl(key: string, ttlMs: number): Promise<number> {
    return this.run(() => this.commands.incrWithTtl(key, Math.max(1, Math.ceil(ttlMs))));
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    return (await this.run(() => this.commands.pExpire(key, Math.max(1, Math.ceil(ttlMs))))) === 1;
  }

  async zAdd(key: string, member: string, score: number): Promise<boolean> {
    return (await this.run(() => this.commands.zAdd(key, { score, value: member }))) === 1;
  }

  async zAddMany(key: string, entries: ScoredMember[]): Promise<string[]> {
    if (entries.length === 0) return [];
    return this.run(() => this.commands.zAddMany(key, entries));
  }

  async zRem(key: string, members: string[]): Promise<void> {
    if (members.length > 0) await this.run(() => this.commands.zRem(key, members));
  }

  async zScores(key: string, members: string[]): Promise<(number | null)[]> {
    if (members.length === 0) return [];
    return this.run(() => this.commands.zmScore(key, members));
  }

  async zPopUpTo(key: string, maxScore: number, limit: number): Promise<ScoredMember[]> {
    const flat = await this.run(() => this.commands.zPopUpTo(key, maxScore, limit));
    const popped: ScoredMember[] = [];
    for (let i = 0; i < flat.length; i += 2) popped.push({ member: flat[i]!, score: Number(flat[i + 1]) });
    return popped;
  }

  async zCard(key: string): Promise<number> {
    return this.run(() => this.commands.zCard(key));
  }

  async zCount(key: string, maxScore: number): Promise<number> {
    return this.run(() => this.commands.zCount(key, "-inf", maxScore));
  }

  async publish(channel: string, message: string): Promise<void> {
    // Channels are not keys: node-redis does not prefix them, so we do.
    const name = this.keyPrefix + channel;
    const connection = this.connection;
    // A cluster sends a sharded message (SPUBLISH) to the shard owning the channel's slot only, not to every node.
    await this.run(() => (connection.kind === "single" ? connection.client.publish(name, message) : connection.cluster.sPublish(name, message)));
  }

  async subscribe(channel: string, onMessage: (message: string) => void, onDelivery: (reliable: boolean) => void): Promise<Subscription> {
    const name = this.keyPrefix + channel;
    const connection = this.connection;
    const subscription = await this.run(() =>
      connection.kind === "single"
        ? singleSubscription(connection.connect, name, onMessage, onDelivery)
        : clusterSubscription(connection.cluster, name, onMessage, onDelivery),
    );
    this.subscriptions.add(subscription);
    return {
      close: async () => {
        this.subscriptions.delete(subscription);
        await subscription.close();
      },
    };
  }

  async ping(): Promise<void> {
    const connection = this.connection;
    await this.run(async () => {
      if (connection.kind === "single") return void (await connection.client.ping());
      // Ready only when every master answers: a slot whose master is down cannot be served.
      const { cluster } = connection;
      await Promise.all(cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()));
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    const closable = this.connection.kind === "single" ? this.connection.client : this.connection.cluster;
    await closable.close().catch(() => closable.destroy());
  }

  private async run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw translated(error);
    }
  }
}

/**
 * Every connection's settings: commands fail at once while the connection is
 * down instead of waiting in a queue; Enterprise maintenance notifications
 * (node-redis's default on RESP3) are not a feature of open-source Redis.
 */
const CONNECTION = { disableOfflineQueue: true, maintNotifications: "disabled" } as const;

/**
 * A client of one Redis. While it has never connected, a lost connection is
 * not retried, so a start (or a subscription) with Redis away fails at once
 * instead of waiting; once it has, it reconnects without end.
 */
async function connectSingle(url: string, keyPrefix: string): Promise<Client> {
  let connected = false;
  const client: Client = RedisClient.create({
    ...CONNECTION,
    scripts: SCRIPTS,
    keyPrefix,
    url,
    socket: { reconnectStrategy: (retries: number, cause: Error) => (connected ? backoffMs(retries) : cause) },
  });
  client.on("error", () => {});
  await client.connect();
  connected = true;
  return client;
}

/** A cluster client, reconnecting to its nodes on the same terms as connectSingle. */
async function connectCluster(nodes: string[], keyPrefix: string): Promise<Cluster> {
  let connected = false;
  const { username, password, tls } = credentials(nodes[0]!);
  const socket = { reconnectStrategy: (retries: number, cause: Error) => (connected ? backoffMs(retries) : cause) };
  const cluster: Cluster = RedisCluster.create({
    scripts: SCRIPTS,
    keyPrefix,
    rootNodes: nodes.map((url) => ({ url })),
    // The root nodes only serve discovery; every connection to a node the cluster names is made from these.
    defaults: {
      ...CONNECTION,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      socket: tls ? { ...socket, tls } : socket,
    },
    // A node that stays unreachable is likely failed over: look for the slot's new master after a second.
    topologyRefreshOnReconnectionAttemptStrategy: 1_000,
  });
  cluster.on("error", () => {});
  await cluster.connect();
  connected = true;
  return cluster;
}

/** The user, password and TLS of a node URL: node-redis applies a root node's URL to discovery only. */
function credentials(url: string): { username: string; password: string; tls: boolean } {
  const parsed = new URL(url);
  return { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password), tls: parsed.protocol === "rediss:" };
}
