import type { CommandPayload, HeartbeatMetrics, Host } from "@muster/contract";
import type { MusterError } from "../errors.js";
import type { FetchLike } from "../transport.js";
import type { AgentClock } from "./clock.js";
import type { CredentialStore, StoredCredentials } from "./credentials.js";
import type { CommandOutcomeStore } from "./outcomes.js";
import type { HostSpecs } from "./specs.js";

/** pino-shaped: a logger of the embedding daemon drops in as it is. */
export interface AgentLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface HostAgentOptions {
  /** The control plane's address, e.g. `https://muster.example.com`. */
  controlPlane: string;
  /** Where the credentials live between starts (`FileCredentialStore` for a file). */
  credentials: CredentialStore;
  /** The machine's specs, asked for when registering (`detectHostSpecs` on Node). */
  specs?: () => HostSpecs | Promise<HostSpecs>;
  /**
   * Ask for a host certificate (default true): a key pair made here and a CSR
   * go with the registration and every refresh; the key and the certificate
   * are kept with the credentials (see `AgentEndpoint`). The key is never sent.
   */
  certificate?: boolean;
  /** Reported at registration as `agent_version`. */
  agentVersion?: string;
  /** Live figures sent with each heartbeat (`createMetricsSampler()` on Node); a failure sends the beat without them. */
  metrics?: () => HeartbeatMetrics | undefined | Promise<HeartbeatMetrics | undefined>;
  logger?: AgentLogger;
  clock?: AgentClock;
  /** Uniform in [0, 1); drives every jitter. */
  random?: () => number;
  /** HTTP for the agent's calls (default: node:http / node:https, with the pin over https). */
  fetch?: FetchLike;
  userAgent?: string;
  /** Timeout of one heartbeat (default 10 s). */
  heartbeatTimeoutMs?: number;
  /** Timeout of a registration or refresh (default 30 s: giving up early on one that went through burns the token). */
  credentialTimeoutMs?: number;
  /** Refresh once this fraction of the host token's lifetime has passed (default 0.8). */
  refreshRatio?: number;
  /** Consecutive failed heartbeats after which the control plane counts as lost (default 3). */
  lostAfterFailures?: number;
  /** How long `stop()` lets a registration or refresh in flight finish, so its new credentials are saved (default 600 ms). */
  stopGraceMs?: number;
  /**
   * Extra CA certificates (PEM) to trust for the control plane, e.g. its own
   * self-signed one; the system's CAs otherwise. Pinning comes on top of this.
   */
  ca?: string | Buffer;
  /** Keep the agent channel (a WebSocket to the control plane) open for heartbeats and commands (default true); false: HTTP heartbeats only, no commands. */
  channel?: boolean;
  /**
   * Where the agent remembers each command's outcome until it expires, so a
   * restarted agent never runs a command twice nor loses a result. Default:
   * the credential store's (`FileCredentialStore`: a file beside the
   * credentials), else memory only.
   */
  commandOutcomes?: CommandOutcomeStore;
  /** Warn when this host's clock is further than this from the control plane's (default 10 s). */
  maxClockSkewMs?: number;
}

/** Runs one command on the host; its return value (JSON) is the result, a throw its failure. */
export type CommandHandler = (payload: CommandPayload, command: { id: string; type: string; expiresAt: Date }) => unknown;

/** Why the agent stopped. Only `stopped` (asked to) is a clean end. */
export type AgentExit =
  | { reason: "stopped" }
  | { reason: "host_deleted"; hostId: string; message: string }
  | { reason: "reregistration_required"; hostId: string; message: string }
  /** The control plane needs a newer agent protocol; the message says where to learn how to upgrade. */
  | { reason: "protocol_rejected"; hostId: string; message: string }
  /** The control plane presented a certificate with another key than the pinned one; the message says how to re-pin. */
  | { reason: "certificate_pin_mismatch"; hostId: string; message: string };

export type RefreshReason = "proactive" | "unauthorized" | "command";

/** The hooks of an embedding daemon: pause work when the control plane is lost, swap credentials, shut down when deleted. */
export interface HostAgentEvents {
  registered: { hostId: string; host: Host; credentials: StoredCredentials };
  started: { hostId: string; heartbeatIntervalS: number };
  /** The control plane accepted a heartbeat. */
  heartbeat: { hostId: string; at: Date };
  /** New credentials, already saved (unless `saved` is false: the store refused them and they live in memory only). */
  credentialsRefreshed: { hostId: string; credentials: StoredCredentials; reason: RefreshReason; saved: boolean };
  /** One heartbeat failed for a reason worth retrying; the next attempt comes after `retryInMs`. */
  heartbeatFailed: { hostId: string; error: MusterError; consecutiveFailures: number; retryInMs: number };
  /** `lostAfterFailures` heartbeats in a row failed. The agent keeps retrying. */
  controlPlaneLost: { hostId: string; error: MusterError; consecutiveFailures: number };
  /** A heartbeat got through after the control plane was lost. */
  controlPlaneRestored: { hostId: string; failedAttempts: number; downtimeMs: number };
  /** The refresh token was refused: the host must be registered again. The agent stops. */
  reregistrationRequired: { hostId: string; message: string };
  /** The control plane no longer knows the host; the credentials are removed. The agent stops. */
  hostDeleted: { hostId: string; message: string };
  /**
   * This host's clock moved beyond `maxClockSkewMs` of the control plane's
   * (`over`), or back within it. `skewMs` is positive when this host is ahead.
   */
  clockSkew: { hostId: string | null; skewMs: number; boundMs: number; over: boolean };
  /** The agent channel is open: heartbeats and commands travel over it. */
  channelOpen: { hostId: string };
  /** The channel closed or could not open; heartbeats go over HTTP until the redial after `retryInMs` succeeds. */
  channelClosed: { hostId: string; code: number; reason: string; retryInMs: number };
  stopped: AgentExit;
}

export type HostAgentState = "idle" | "running" | "stopping" | "stopped";
