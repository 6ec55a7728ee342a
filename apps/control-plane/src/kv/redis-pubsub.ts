import type { EventEmitter } from "node:events";
import calculateSlot from "cluster-key-slot";
import type { Client, Cluster } from "./redis.js";

/**
 * Subscriptions on Redis, with the port's delivery signal: reliable exactly
 * while the connection that delivers the channel is up and the server has
 * confirmed the subscription on it. node-redis restores subscriptions by
 * itself (a client resubscribes on reconnecting before it reports ready; a
 * cluster client moves a sharded subscription to the slot's new master after
 * a failover), so the signal watches node-redis's own state rather than
 * guessing from events: any change of a node's connection triggers a check,
 * and a short timer catches a resubscription that completes between events.
 */
const RECHECK_MS = 100;

export interface RedisSubscription {
  close(): Promise<void>;
}

type PubSubType = "CHANNELS" | "SHARDED";

/**
 * Calls `onDelivery` with each change of "the client that `delivering` names
 * is ready and holds `listener` on `channel`", starting with the state now.
 */
function watchDelivery(
  delivering: () => Client | undefined,
  type: PubSubType,
  channel: string,
  listener: (message: string) => void,
  onDelivery: (reliable: boolean) => void,
  source: EventEmitter,
  events: string[],
): () => void {
  let reliable: boolean | null = null;
  const check = () => {
    const client = delivering();
    const now = client?.isReady === true && client.getPubSubListeners(type).get(channel)?.strings.has(listener) === true;
    if (now === reliable) return;
    reliable = now;
    onDelivery(now);
  };
  check();
  const timer = setInterval(check, RECHECK_MS);
  timer.unref();
  for (const event of events) source.on(event, check);
  return () => {
    clearInterval(timer);
    for (const event of events) source.off(event, check);
  };
}

/** One Redis: each subscription has a connection of its own (a subscribed connection waits for messages). */
export async function singleSubscription(
  connect: () => Promise<Client>,
  channel: string,
  onMessage: (message: string) => void,
  onDelivery: (reliable: boolean) => void,
): Promise<RedisSubscription> {
  const subscriber = await connect();
  const listener = (message: string) => onMessage(message);
  try {
    await subscriber.subscribe(channel, listener);
  } catch (error) {
    subscriber.destroy();
    throw error;
  }
  const unwatch = watchDelivery(() => subscriber, "CHANNELS", channel, listener, onDelivery, subscriber, ["error", "ready", "end"]);
  return {
    async close() {
      unwatch();
      subscriber.destroy();
    },
  };
}

/**
 * A cluster: a sharded subscription (SSUBSCRIBE) on the master that owns the
 * channel's slot, so a message travels within that shard only instead of
 * across the whole cluster bus. node-redis keeps one pub/sub connection per
 * master for all of a process's sharded channels there.
 */
export async function clusterSubscription(
  cluster: Cluster,
  channel: string,
  onMessage: (message: string) => void,
  onDelivery: (reliable: boolean) => void,
): Promise<RedisSubscription> {
  const slot = calculateSlot(channel);
  const listener = (message: string) => onMessage(message);
  await cluster.sSubscribe(channel, listener);
  const unwatch = watchDelivery(
    () => cluster.slots[slot]?.master.pubSub?.client,
    "SHARDED",
    channel,
    listener,
    onDelivery,
    cluster,
    ["node-error", "node-reconnecting", "node-disconnect", "node-ready"],
  );
  return {
    async close() {
      unwatch();
      // Unreachable or closed already: nothing is left to tell the server.
      await cluster.sUnsubscribe(channel, listener).catch(() => {});
    },
  };
}
