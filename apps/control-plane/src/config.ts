import { isIP } from "node:net";
import { resolve } from "node:path";
import { EVENTS_KEEPALIVE_S, HELLO_TIMEOUT_S, PROTOCOL_VERSION } from "@muster/contract";
import { ALLOW_SETTING, DENY_SETTING, isCidrOrAddress } from "./net/address-policy.js";
import { parseSecretKey } from "./secrets/sealer.js";

export interface Config {
  port: number;
  /** The interface the API listens on; 0.0.0.0 (every IPv4 interface), as containers expect. */
  listenHost: string;
  /** Bearer token /metrics asks for; null: /metrics is open. */
  metricsToken: string | null;
  /** Ranges the probe may connect to although the built-in list refuses them (e.g. 127.0.0.0/8 for an agent on this machine). */
  probeAllowCidrs: string[];
  /** Ranges the probe never connects to, beyond the built-in list. */
  probeDenyCidrs: string[];
  /** One probe of a host per this many seconds at most; 0: no limit. */
  probeIntervalS: number;
  dataDir: string;
  databaseUrl: string | null;
  redisUrl: string | null;
  /** A Redis Cluster instead of one Redis: node URLs to discover it from (any few of its nodes). */
  redisClusterNodes: string[] | null;
  /** Prepended to every Redis key, so several deployments can share one Redis. */
  kvPrefix: string;
  adminKey: string | null;
  heartbeatIntervalS: number;
  offlineAfterS: number;
  /** Cap on the fleet's total heartbeats per second; null: no cap. */
  maxHeartbeatsPerS: number | null;
  /** A sweep that would turn more than this share (percent) of the tracked fleet offline at once is held (100: never). */
  massOfflinePercent: number;
  hostTokenTtlS: number;
  refreshTokenTtlS: number;
  registrationTokenTtlS: number;
  /** Lifetime of a host certificate; agents renew it with every refresh, long before it ends. */
  hostCertTtlS: number;
  /** A CA given as PEM files (certificate, PKCS#8 key); null: the control plane keeps its own in the database. */
  caCertFile: string | null;
  caKeyFile: string | null;
  /**
   * The key-encryption key that seals private keys at rest (32 bytes, base64
   * or hex), or a file holding it; neither: embedded mode keeps a generated
   * one in the data folder, PostgreSQL mode refuses to start.
   */
  secretKey: string | null;
  secretKeyFile: string | null;
  /** The key-encryption key being replaced: what it sealed is re-sealed under the current one at start. */
  secretKeyPrevious: string | null;
  /** Rotate the host-token signing key once it is this many days old; null: only when an admin asks. */
  signingKeyRotateDays: number | null;
  /** How often the sweeper looks for silent hosts; bounds how late an offline mark can be. */
  sweepIntervalMs: number;
  /** How often batched heartbeats reach PostgreSQL. */
  heartbeatFlushMs: number;
  logLevel: string;
  /** Agents speaking an older channel protocol are refused, on the channel and on HTTP register / heartbeat. */
  minProtocolVersion: number;
  /** Where a refused agent is sent to learn how to upgrade. */
  agentUpgradeUrl: string;
  /** How long a new channel may stay silent before its hello. */
  channelHelloTimeoutMs: number;
  /** Serve HTTPS with this certificate chain and key (PEM files); null: plain HTTP (TLS ends at a proxy). */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** The pin of the served certificate, handed to agents at register and refresh; set at start from tlsCertFile. */
  serverCertificatePin: string | null;
  jwtIssuer: string;
  jwtAudience: string;
  /** Registrations, and refreshes, per minute from one client address (each endpoint counted apart); 0: no limit. */
  rateLimitPerAddress: number;
  /** Registrations, and refreshes, per minute presenting one token; 0: no limit. */
  rateLimitPerToken: number;
  /** Proxies (IPs or CIDRs) whose X-Forwarded-For names the client; empty: the socket's peer is the client. */
  trustedProxies: string[];
  /**
   * Slack on host-token expiry, for clocks that disagree: control planes that
   * sign and verify on different machines, and a token sent just before it ended.
   */
  clockLeewayS: number;
  /** Events older than this are pruned; a stream can resume from any event younger (MUSTER_EVENTS_RETENTION_S). */
  eventsRetentionS: number;
  /** How often an idle event stream gets a comment (and its API key is checked again); tests shorten it. */
  eventsKeepAliveMs: number;
  /** How often each process reads the event log whether or not a commit was announced (a safety net for lost announcements); tests lengthen it. */
  eventsPollMs: number;
  /** A failed webhook delivery is retried after this, doubling with each attempt (up to an hour); tests shorten it. */
  webhookRetryBaseMs: number;
  /** The console's built files; null: those of the @muster/console workspace package (apps/console/dist). */
  consoleDir: string | null;
}

export class ConfigError extends Error {}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export const defaultConfig: Config = {
  port: 8080,
  listenHost: "0.0.0.0",
  metricsToken: null,
  probeAllowCidrs: [],
  probeDenyCidrs: [],
  probeIntervalS: 10,
  dataDir: "./.muster",
  databaseUrl: null,
  redisUrl: null,
  redisClusterNodes: null,
  kvPrefix: "muster:",
  adminKey: null,
  heartbeatIntervalS: 30,
  offlineAfterS: 90,
  maxHeartbeatsPerS: null,
  massOfflinePercent: 30,
  hostTokenTtlS: 3600,
  refreshTokenTtlS: 90 * 24 * 3600,
  registrationTokenTtlS: 3600,
  hostCertTtlS: 24 * 3600,
  caCertFile: null,
  caKeyFile: null,
  secretKey: null,
  secretKeyFile: null,
  secretKeyPrevious: null,
  signingKeyRotateDays: null,
  sweepIntervalMs: 1000,
  heartbeatFlushMs: 1000,
  logLevel: "info",
  minProtocolVersion: 1,
  agentUpgradeUrl: "https://github.com/muster-dev/muster/blob/main/docs/agent.md#upgrading",
  channelHelloTimeoutMs: HELLO_TIMEOUT_S * 1000,
  tlsCertFile: null,
  tlsKeyFile: null,
  serverCertificatePin: null,
  jwtIssuer: "muster",
  jwtAudience: "muster-host",
  // Generous per address: a fleet of thousands may enroll through one NAT. Tight per token: one agent retries a few times at most.
  rateLimitPerAddress: 600,
  rateLimitPerToken: 10,
  trustedProxies: [],
  clockLeewayS: 30,
  consoleDir: null,
  eventsRetentionS: 7 * 24 * 3600,
  eventsKeepAliveMs: EVENTS_KEEPALIVE_S * 1000,
  eventsPollMs: 1_000,
  webhookRetryBaseMs: 10_000,
};

/** Reads SPEC §6's environment; every mistake is reported in one message that names the variable. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const text = (name: string): string | null => {
    const raw = env[name]?.trim();
    return raw ? raw : null;
  };

  const list = (name: string): string[] => (text(name) ?? "").split(",").map((entry) => entry.trim()).filter(Boolean);

  const config: Config = {
    ...defaultConfig,
    port: integer("PORT", defaultConfig.port, 0, 65535),
    listenHost: text("MUSTER_LISTEN_HOST") ?? defaultConfig.listenHost,
    metricsToken: text("MUSTER_METRICS_TOKEN"),
    probeAllowCidrs: list(ALLOW_SETTING),
    probeDenyCidrs: list(DENY_SETTING),
    probeIntervalS: integer("MUSTER_PROBE_INTERVAL_S", defaultConfig.probeIntervalS, 0, 3600),
    dataDir: resolve(text("MUSTER_DATA_DIR") ?? defaultConfig.dataDir),
    databaseUrl: text("DATABASE_URL"),
    redisUrl: text("REDIS_URL"),
    redisClusterNodes: nonEmpty(list("REDIS_CLUSTER_NODES")),
    kvPrefix: text("MUSTER_KV_PREFIX") ?? defaultConfig.kvPrefix,
    adminKey: text("MUSTER_ADMIN_KEY"),
    heartbeatIntervalS: integer("MUSTER_HEARTBEAT_INTERVAL_S", defaultConfig.heartbeatIntervalS, 1, 3600),
    offlineAfterS: integer("MUSTER_OFFLINE_AFTER_S", defaultConfig.offlineAfterS, 2, 86400),
    maxHeartbeatsPerS: env.MUSTER_MAX_HEARTBEATS_PER_S ? integer("MUSTER_MAX_HEARTBEATS_PER_S", 0, 1, 10_000_000) : null,
    massOfflinePercent: integer("MUSTER_MASS_OFFLINE_PERCENT", defaultConfig.massOfflinePercent, 1, 100),
    hostTokenTtlS: integer("MUSTER_HOST_TOKEN_TTL_S", defaultConfig.hostTokenTtlS, 60, 7 * 86400),
    refreshTokenTtlS: integer("MUSTER_REFRESH_TOKEN_TTL_S", defaultConfig.refreshTokenTtlS, 3600, 3650 * 86400),
    hostCertTtlS: integer("MUSTER_HOST_CERT_TTL_S", defaultConfig.hostCertTtlS, 300, 30 * 86400),
    caCertFile: text("MUSTER_CA_CERT_FILE"),
    caKeyFile: text("MUSTER_CA_KEY_FILE"),
    secretKey: text("MUSTER_SECRET_KEY"),
    secretKeyFile: text("MUSTER_SECRET_KEY_FILE"),
    secretKeyPrevious: text("MUSTER_SECRET_KEY_PREVIOUS"),
    signingKeyRotateDays: env.MUSTER_SIGNING_KEY_ROTATE_DAYS ? integer("MUSTER_SIGNING_KEY_ROTATE_DAYS", 0, 1, 3650) : null,
    logLevel: text("LOG_LEVEL") ?? defaultConfig.logLevel,
    minProtocolVersion: integer("MUSTER_MIN_PROTOCOL_VERSION", defaultConfig.minProtocolVersion, 0, PROTOCOL_VERSION),
    agentUpgradeUrl: text("MUSTER_AGENT_UPGRADE_URL") ?? defaultConfig.agentUpgradeUrl,
    tlsCertFile: text("MUSTER_TLS_CERT_FILE"),
    tlsKeyFile: text("MUSTER_TLS_KEY_FILE"),
    rateLimitPerAddress: integer("MUSTER_RATE_LIMIT_PER_ADDRESS", defaultConfig.rateLimitPerAddress, 0, 10_000_000),
    rateLimitPerToken: integer("MUSTER_RATE_LIMIT_PER_TOKEN", defaultConfig.rateLimitPerToken, 0, 10_000),
    trustedProxies: list("MUSTER_TRUSTED_PROXIES"),
    clockLeewayS: integer("MUSTER_CLOCK_LEEWAY_S", defaultConfig.clockLeewayS, 0, 300),
    eventsRetentionS: integer("MUSTER_EVENTS_RETENTION_S", defaultConfig.eventsRetentionS, 86400, 3650 * 86400),
  };

  if (config.adminKey !== null && config.adminKey.length < 32) {
    problems.push("MUSTER_ADMIN_KEY must be at least 32 characters");
  }
  if (config.offlineAfterS <= config.heartbeatIntervalS) {
    problems.push(
      `MUSTER_OFFLINE_AFTER_S (${config.offlineAfterS}) must be longer than MUSTER_HEARTBEAT_INTERVAL_S (${config.heartbeatIntervalS}), or every host flaps offline`,
    );
  }
  if (config.refreshTokenTtlS <= config.hostTokenTtlS) {
    problems.push("MUSTER_REFRESH_TOKEN_TTL_S must be longer than MUSTER_HOST_TOKEN_TTL_S");
  }
  if ((config.tlsCertFile === null) !== (config.tlsKeyFile === null)) {
    problems.push("MUSTER_TLS_CERT_FILE and MUSTER_TLS_KEY_FILE go together: give both or neither");
  }
  if (config.clockLeewayS * 2 > config.hostTokenTtlS) {
    problems.push(`MUSTER_CLOCK_LEEWAY_S (${config.clockLeewayS}) must be at most half of MUSTER_HOST_TOKEN_TTL_S, or expired tokens outlive their purpose`);
  }
  if (config.hostCertTtlS <= config.hostTokenTtlS) {
    // Agents renew their certificate when they refresh, at 80% of the token's lifetime.
    problems.push("MUSTER_HOST_CERT_TTL_S must be longer than MUSTER_HOST_TOKEN_TTL_S, or certificates expire before agents renew them");
  }
  if ((config.caCertFile === null) !== (config.caKeyFile === null)) {
    problems.push("MUSTER_CA_CERT_FILE and MUSTER_CA_KEY_FILE go together: give both or neither");
  }
  problems.push(...secretKeyProblems(config));
  for (const proxy of config.trustedProxies) {
    if (!isAddressOrCidr(proxy)) problems.push(`MUSTER_TRUSTED_PROXIES must list IP addresses or CIDRs, comma-separated (got "${proxy}")`);
  }
  for (const [setting, entries] of [[ALLOW_SETTING, config.probeAllowCidrs], [DENY_SETTING, config.probeDenyCidrs]] as const) {
    for (const entry of entries) {
      if (!isCidrOrAddress(entry)) problems.push(`${setting} must list IP addresses or CIDRs, comma-separated (got "${entry}")`);
    }
  }
  if (isIP(config.listenHost) === 0) {
    problems.push(`MUSTER_LISTEN_HOST must be an IP address, e.g. 0.0.0.0 (every interface) or 127.0.0.1 (got "${config.listenHost}")`);
  }
  if (config.metricsToken !== null && config.metricsToken.length < 16) {
    problems.push("MUSTER_METRICS_TOKEN must be at least 16 characters");
  }
  if (!LOG_LEVELS.includes(config.logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  }
  if (config.redisUrl !== null && config.redisClusterNodes !== null) {
    problems.push("REDIS_URL and REDIS_CLUSTER_NODES exclude each other: give one Redis or a Redis Cluster");
  }
  if (config.redisClusterNodes !== null && /[{}]/.test(config.kvPrefix)) {
    // The first {…} of a key is its hash tag: braces in the prefix would put every key in one slot, on one master.
    problems.push("MUSTER_KV_PREFIX must not contain { or } with REDIS_CLUSTER_NODES");
  }
  for (const [name, url, schemes] of [
    ["DATABASE_URL", config.databaseUrl, ["postgres:", "postgresql:"]],
    ["REDIS_URL", config.redisUrl, ["redis:", "rediss:"]],
    ...(config.redisClusterNodes ?? []).map((node) => ["REDIS_CLUSTER_NODES", node, ["redis:", "rediss:"]] as const),
  ] as const) {
    if (url !== null && !schemes.some((scheme) => url.startsWith(scheme))) {
      problems.push(`${name} must start with ${schemes.join(" or ")}//`);
    }
  }

  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  return config;
}

const MAKE_A_KEY = "make one with `openssl rand -base64 32`";

/** The key-encryption key's settings; a value is never repeated in a message. */
function secretKeyProblems(config: Config): string[] {
  const problems: string[] = [];
  if (config.secretKey !== null && config.secretKeyFile !== null) {
    problems.push("MUSTER_SECRET_KEY and MUSTER_SECRET_KEY_FILE are two ways to give one key: give one of them");
  }
  for (const [name, value] of [["MUSTER_SECRET_KEY", config.secretKey], ["MUSTER_SECRET_KEY_PREVIOUS", config.secretKeyPrevious]] as const) {
    if (value !== null && parseSecretKey(value) === null) problems.push(`${name} must be 32 random bytes in base64 or hex (${MAKE_A_KEY})`);
  }
  if (config.secretKey !== null && config.secretKeyPrevious !== null && parseSecretKey(config.secretKey)?.equals(parseSecretKey(config.secretKeyPrevious) ?? Buffer.alloc(0))) {
    problems.push("MUSTER_SECRET_KEY_PREVIOUS is the same key as MUSTER_SECRET_KEY: give the new key in MUSTER_SECRET_KEY and the old one in MUSTER_SECRET_KEY_PREVIOUS");
  }
  if (config.databaseUrl !== null && config.secretKey === null && config.secretKeyFile === null) {
    problems.push(
      `MUSTER_SECRET_KEY (or MUSTER_SECRET_KEY_FILE) is required with DATABASE_URL: the key-encryption key that seals the CA's and the host-token signing keys, kept apart from the database and its backups; ${MAKE_A_KEY}`,
    );
  }
  return problems;
}

/** A comma-separated list, entries trimmed; null when nothing is listed. */
function nonEmpty(entries: string[]): string[] | null {
  return entries.length > 0 ? entries : null;
}

function isAddressOrCidr(entry: string): boolean {
  const [address = "", prefix, ...rest] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^[0-9]{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
}
