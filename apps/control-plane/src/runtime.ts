import { randomUUID } from "node:crypto";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { createApp } from "./app.js";
import { HostTokens } from "./auth/host-tokens.js";
import { ChannelHub } from "./channel/hub.js";
import { createChannelMetrics } from "./channel/metrics.js";
import { EventHub } from "./events/hub.js";
import { EventPruner } from "./events/pruner.js";
import { WebhookDeliverer } from "./webhooks/deliverer.js";
import type { Config } from "./config.js";
import { openEmbedded, openPostgres, type Database } from "./db/client.js";
import type { AppDeps, AppEnv } from "./http/env.js";
import type { Kv } from "./kv/kv.js";
import { MemoryKv } from "./kv/memory.js";
import { RedisKv, type RedisTarget } from "./kv/redis.js";
import { systemClock, systemRandom, type Clock, type RandomBytes } from "./lib/clock.js";
import { createMetrics } from "./metrics.js";
import { CaKeyring, ensureCertificateAuthority } from "./pki/authorities.js";
import { ControlPlaneIdentity } from "./pki/identity.js";
import { sealKeysAtRest } from "./secrets/at-rest.js";
import { loadSealer } from "./secrets/secret-keys.js";
import { bootstrapAdmin, type BootstrapResult } from "./services/bootstrap.js";
import { canonicalizeHostArch } from "./services/host-arch.js";
import { countCommandsByStatus } from "./services/commands.js";
import { EmbeddedMaintenance } from "./db/maintenance.js";
import { announcingCommits } from "./services/events.js";
import { countHostsByStatus } from "./services/hosts.js";
import { KeyringWatch } from "./services/keyring-watch.js";
import { Liveness } from "./services/liveness.js";
import { Pacing } from "./services/pacing.js";
import { ensureSigningKey } from "./services/signing-keys.js";
import { ProbeSlots } from "./services/probe.js";
import { RevocationLists } from "./services/revocation-lists.js";
import { AddressPolicy } from "./net/address-policy.js";

export interface Stores {
  database: Database;
  kv: Kv;
}

/** The environment alone decides: DATABASE_URL, REDIS_URL or REDIS_CLUSTER_NODES, or the embedded default in the data folder. */
export async function openStores(config: Config): Promise<Stores> {
  const database = config.databaseUrl ? await openPostgres(config.databaseUrl) : await openEmbedded(config.dataDir);
  const target = redisTarget(config);
  if (target === null) return { database, kv: new MemoryKv() };
  try {
    return { database, kv: await RedisKv.connect({ target, keyPrefix: config.kvPrefix }) };
  } catch (error) {
    await database.close();
    const named = "url" in target ? "Redis at REDIS_URL" : "the Redis Cluster at REDIS_CLUSTER_NODES";
    throw new Error(`cannot reach ${named} (${(error as Error).message}); is it running?`, { cause: error });
  }
}

function redisTarget(config: Config): RedisTarget | null {
  if (config.redisClusterNodes) return { clusterNodes: config.redisClusterNodes };
  return config.redisUrl ? { url: config.redisUrl } : null;
}

export interface RuntimeOptions {
  config: Config;
  logger: Logger;
  stores: Stores;
  migrationsFolder: string;
  clock?: Clock;
  random?: RandomBytes;
}

export interface Runtime {
  app: Hono<AppEnv>;
  deps: AppDeps;
  bootstrap: BootstrapResult;
  /** Agent channels: attach it to the HTTP server to serve GET /v1/hosts/{id}/channel. */
  channels: ChannelHub;
  /** Prunes the event log past its retention (tests drive it by hand). */
  pruner: EventPruner;
  /** Fans events out to webhooks and sends them (tests drive it by hand). */
  webhooks: WebhookDeliverer;
  /** Keeps the signing keys and CAs in step across processes; its `tick()` is the minute's upkeep. */
  keyringWatch: KeyringWatch;
  /** The embedded database's vacuum and analyse (null on PostgreSQL, whose autovacuum does it). */
  maintenance: EmbeddedMaintenance | null;
  /** Starts the background work: the embedded database's maintenance, revocation-list and credential-change subscriptions, heartbeat flush, offline sweeper, agent channels, keyring upkeep, event streams and pruning, webhooks. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function buildRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { config, logger, stores } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const { database, kv } = stores;
  const metrics = createMetrics(
    () => countHostsByStatus(db),
    () => liveness.credentialsTrusted,
  );
  const events = new EventHub({ db: database.db, kv, clock, logger, metrics }, config.eventsKeepAliveMs, config.eventsPollMs);
  // Names this process in the leases that elect one process for work done once.
  const instanceId = `cp-${randomUUID()}`;
  const addresses = new AddressPolicy({ allow: config.probeAllowCidrs, deny: config.probeDenyCidrs });
  // The webhook deliverer is made once the key-encryption key that opens webhook secrets is loaded; commits before that have no deliveries to send.
  let wakeWebhooks = (): void => {};
  // Every transaction that writes events announces them once committed (see services/events.ts).
  const db = announcingCommits(database.db, () => {
    events.announce();
    wakeWebhooks();
  });

  // Start-up work that must happen once, before any key is used: seal what is not sealed, make what is missing.
  const { bootstrap, sealer } = await database.exclusively(async () => {
    await database.migrate(options.migrationsFolder);
    const renamed = await canonicalizeHostArch(db);
    if (renamed > 0) logger.info({ hosts: renamed }, "host architectures renamed to the canonical names (amd64, arm64, …)");
    const sealer = await loadSealer(config, database, { random, logger });
    await sealKeysAtRest({ db, sealer, clock, random, logger });
    await ensureSigningKey(db, sealer, random, clock.now());
    await ensureCertificateAuthority(db, sealer, random, clock.now(), config);
    return { sealer, bootstrap: await bootstrapAdmin({ db, clock, random }, config.adminKey) };
  });
  if (!bootstrap.created && config.adminKey) {
    logger.debug("MUSTER_ADMIN_KEY is only used to seed an empty database; this one is bootstrapped already");
  }

  const webhooks = new WebhookDeliverer({ db: database.db, clock, config, logger, random, addresses, sealer }, instanceId);
  wakeWebhooks = () => webhooks.wake();
  const hostTokens = await HostTokens.load(db, sealer, clock, random, config);
  const ca = await CaKeyring.load(db, sealer, config);
  const pacing = new Pacing(db, config, logger);
  const revocationLists = new RevocationLists({ db, kv, clock, random, config, logger, ca });
  const serviceDeps = {
    db,
    kv,
    clock,
    random,
    config,
    logger,
    metrics,
    hostTokens,
    pacing,
    ca,
    sealer,
    identity: new ControlPlaneIdentity(ca, clock, random),
    addresses,
    revocationLists,
    probeSlots: new ProbeSlots(),
  };
  const liveness = new Liveness(serviceDeps, instanceId, clock.now());
  const pruner = new EventPruner(serviceDeps, instanceId);
  // PostgreSQL's own autovacuum does this for a server; the embedded one has none.
  const maintenance = database.kind === "embedded" ? new EmbeddedMaintenance(database.db, logger) : null;
  const deps: AppDeps = {
    ...serviceDeps,
    liveness,
    events,
    readiness: { database: () => database.ping(), kv: () => kv.ping() },
  };
  const channels = new ChannelHub(deps, createChannelMetrics(metrics.registry, () => countCommandsByStatus(db)));
  const keyringWatch = new KeyringWatch(serviceDeps);
  return {
    app: createApp(deps),
    deps,
    bootstrap,
    channels,
    pruner,
    webhooks,
    keyringWatch,
    maintenance,
    async start() {
      await maintenance?.start();
      await revocationLists.start();
      await pacing.start();
      await liveness.start();
      await channels.start();
      await keyringWatch.start();
      await deps.events.start();
      pruner.start();
      webhooks.start();
    },
    async stop() {
      await webhooks.stop();
      await pruner.stop();
      await deps.events.stop();
      await keyringWatch.stop();
      await channels.stop();
      pacing.stop();
      await liveness.stop();
      await revocationLists.stop();
      await maintenance?.stop();
    },
  };
}
