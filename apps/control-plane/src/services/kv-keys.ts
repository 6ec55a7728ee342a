import calculateSlot from "cluster-key-slot";

/**
 * Every key the services keep in the KV store, in one place.
 *
 * On a Redis Cluster a key lives in one of 16,384 hash slots, each owned by one
 * master; the slot comes from the key's hash tag (the text between its first
 * `{` and the next `}`) when it has one, else from the whole key. Each KV call
 * touches one key, so it stays in one slot; a script or transaction added
 * later that touches several keys must give them one hash tag. A structure the
 * whole fleet writes must not be one key: it would put every process's load on
 * one master. The liveness set is therefore split in shards.
 */

/** How many shards the liveness set has: 60 divides evenly among 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30 masters. */
export const LIVENESS_SHARDS = 60;
const HASH_SLOTS = 16_384;

/**
 * The tag of liveness shard `shard`: the first of `l<shard>.0`, `l<shard>.1`, …
 * whose hash slot lies in the shard's sixtieth of the slot space. A cluster
 * whose masters own equal runs of slots (what `redis-cli --cluster create`
 * makes) then holds equal numbers of shards on each master.
 */
function livenessTag(shard: number): string {
  for (let i = 0; ; i++) {
    const tag = `l${shard}.${i}`;
    if (Math.floor((calculateSlot(tag) * LIVENESS_SHARDS) / HASH_SLOTS) === shard) return tag;
  }
}

/**
 * The liveness set's shards: sorted sets of hosts believed online, scored by
 * their last heartbeat (ms since the epoch). Which shard holds a host is fixed
 * by its ID (livenessShard); changing LIVENESS_SHARDS moves hosts between
 * keys, so it is part of the store's layout.
 */
export const LIVENESS_KEYS: readonly string[] = Array.from({ length: LIVENESS_SHARDS }, (_, shard) => `liveness:{${livenessTag(shard)}}`);

/** The shard of the liveness set that holds this host. */
export const livenessShard = (hostId: string): number => calculateSlot(hostId) % LIVENESS_SHARDS;

/** A live registration token, by hash; its TTL is the token's lifetime. */
export const registrationTokenKey = (tokenHash: string) => `regtoken:${tokenHash}`;

/** The cached credential state of a host (see credential-state.ts). */
export const credentialStateKey = (hostId: string) => `hostcred:${hostId}`;

/** Pub/sub channel announcing a host whose credential state changed (the message is its ID). */
export const CREDENTIAL_CHANGES_CHANNEL = "credential-changes";

/**
 * Pub/sub channel between control-plane processes about agent channels: a new
 * channel claiming its host (older ones elsewhere close), and hosts with
 * commands waiting (the process holding the host's channel delivers them).
 */
export const AGENT_CHANNEL_BUS = "agent-channels";

/** The ID of a host's newest channel; the last writer wins, and older channels close when they see another ID here. */
export const channelOwnerKey = (hostId: string) => `channel:${hostId}`;

/**
 * Since when some control plane has been serving without a break (ms since the
 * epoch). Every process refreshes it; it lapses when none is left, so the
 * first to start again begins a new period.
 */
export const SERVING_SINCE_KEY = "serving-since";

/**
 * When some control plane last marked the serving period (ms since the epoch).
 * It has no TTL, so a process starting after every process was gone can tell
 * how long the break lasted.
 */
export const SERVING_SEEN_KEY = "serving-seen";

/** A rate-limit counter: one per endpoint, kind of subject (client address, token hash), subject and minute window. */
export const rateLimitKey = (endpoint: string, kind: string, subject: string, window: number) => `ratelimit:${endpoint}:${kind}:${subject}:${window}`;

/**
 * A registration's replayable answer (see registration-replay.ts), keyed by the
 * registration token's hash; the value is sealed with a key only the token opens.
 */
export const registrationReplayKey = (tokenHash: string) => `regreplay:${tokenHash}`;

/** Pub/sub channel announcing a change to the shared keys: `signing-keys` (a rotation) or `ca` (a CA rotation step). */
export const KEYRING_CHANNEL = "keyring-changes";

/** The CA's signed revocation list, as the last process to build it stored it (see revocation-lists.ts). */
export const CRL_KEY = "crl";

/** Pub/sub channel announcing a new revocation list (the message is its ID): other processes take the stored copy. */
export const CRL_CHANGES_CHANNEL = "crl-changes";

/** Pub/sub channel on which a process announces that it committed events; every process's stream hub then reads the log. */
export const EVENTS_CHANNEL = "events";
