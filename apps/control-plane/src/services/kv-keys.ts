/** Every key the services keep in the KV store, in one place. */

/** Sorted set of hosts believed online, scored by their last heartbeat (ms since the epoch). */
export const LIVENESS_KEY = "liveness";

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

/** Pub/sub channel on which a process announces that it committed events; every process's stream hub then reads the log. */
export const EVENTS_CHANNEL = "events";
