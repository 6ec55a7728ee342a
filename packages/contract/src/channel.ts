import { Type, type Static } from "@sinclair/typebox";
import { CommandPayload, commandOutcomeFields } from "./commands.js";
import { Label, Nullable, Timestamp } from "./common.js";
import { HeartbeatMetrics } from "./hosts.js";
import { IdSchema } from "./ids.js";

/**
 * The agent channel: a WebSocket the agent dials out to
 * `GET /v1/hosts/{id}/channel` (with `X-Host-Token`), carrying JSON text
 * messages. The agent speaks first (hello); the control plane answers with
 * welcome or rejected. Then heartbeats flow up, commands down, and the agent
 * acknowledges each command and reports its result, which the control plane
 * acknowledges in turn once it is stored (protocol 3).
 */

/**
 * The protocol this contract describes. Bumped on every change an older peer
 * cannot follow. 2: the welcome names the control plane's version, and
 * heartbeats to a control plane of 2 or later carry `sent_at`. 3: see
 * OUTCOME_PROTOCOL_VERSION.
 */
export const PROTOCOL_VERSION = 3;

/**
 * From this version on, both ends keep commands to one outcome: the control
 * plane answers every result it has dealt with by a `result_ack`, and sends a
 * command the agent acknowledged but has not reported on again on each new
 * channel; the agent remembers each command's outcome until it expires, so a
 * repeat is never run twice, and sends results until they are acknowledged.
 * Neither end sends these to a peer that spoke an older version: an older
 * agent closes the channel on a message it does not know, and it would run a
 * re-sent command again after a restart.
 */
export const OUTCOME_PROTOCOL_VERSION = 3;

/** Carries the agent's protocol version on HTTP register and heartbeat calls; absent means "not told". */
export const PROTOCOL_HEADER = "x-muster-protocol";

/** Seconds the control plane waits for the hello before it closes the socket. */
export const HELLO_TIMEOUT_S = 10;

/** WebSocket close codes of the channel (4000–4999 is the application range). */
export const CHANNEL_CLOSE = {
  /** No hello within HELLO_TIMEOUT_S. */
  helloTimeout: 4000,
  /** The agent's protocol is older than the control plane accepts: fatal, do not redial. */
  protocolTooOld: 4001,
  /** A newer channel of the same host opened (on this control plane or another): last one wins. */
  replaced: 4002,
  /** A message that is not JSON or not one of the protocol's. */
  badMessage: 4003,
  /** No message within the offline window: the agent is gone or its network is. */
  silent: 4008,
  /** The host token expired or the host's credentials were revoked: refresh, then redial. */
  unauthorized: 4401,
  /** The host was deleted. */
  hostDeleted: 4404,
} as const;

export const Hello = Type.Object(
  {
    type: Type.Literal("hello"),
    protocol_version: Type.Integer({ minimum: 0 }),
    agent_version: Label(64),
  },
  { additionalProperties: false },
);
export type Hello = Static<typeof Hello>;

export const ChannelHeartbeat = Type.Object(
  {
    type: Type.Literal("heartbeat"),
    metrics: Type.Optional(HeartbeatMetrics),
    /** The agent's clock when it sent the beat, as in the HTTP heartbeat's X-Muster-Agent-Clock. */
    sent_at: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);

/** The agent received a command; its state becomes `delivered`. */
export const CommandAck = Type.Object({ type: Type.Literal("ack"), id: IdSchema("command") }, { additionalProperties: false });

/** How a command ended on the host; `result` for success, `error` (a sentence) for failure. */
export const CommandResult = Type.Object(
  { type: Type.Literal("result"), id: IdSchema("command"), ...commandOutcomeFields },
  { additionalProperties: false },
);
export type CommandResult = Static<typeof CommandResult>;

export const AgentMessage = Type.Union([Hello, ChannelHeartbeat, CommandAck, CommandResult]);
export type AgentMessage = Static<typeof AgentMessage>;

export const Welcome = Type.Object({
  type: Type.Literal("welcome"),
  host_id: IdSchema("host"),
  heartbeat_interval_s: Type.Integer({ minimum: 1 }),
  min_protocol_version: Type.Integer(),
  /** The control plane's own protocol; absent from version 1, which refuses fields it does not know. */
  protocol_version: Type.Optional(Type.Integer()),
});
export type Welcome = Static<typeof Welcome>;

export const Rejected = Type.Object({
  type: Type.Literal("rejected"),
  code: Type.Literal("protocol_too_old"),
  message: Type.String(),
  min_protocol_version: Type.Integer(),
  help_url: Type.String(),
});
export type Rejected = Static<typeof Rejected>;

export const CommandMessage = Type.Object({
  type: Type.Literal("command"),
  id: IdSchema("command"),
  command_type: Type.String(),
  payload: Nullable(CommandPayload),
  expires_at: Timestamp,
});
export type CommandMessage = Static<typeof CommandMessage>;

/**
 * The control plane is done with the agent's result for this command (protocol
 * 3): stored, a repeat of the stored one, or refused because another result
 * was stored first. The agent stops sending it.
 */
export const ResultAck = Type.Object({ type: Type.Literal("result_ack"), id: IdSchema("command") });
export type ResultAck = Static<typeof ResultAck>;

export const ControlPlaneMessage = Type.Union([Welcome, Rejected, CommandMessage, ResultAck]);
export type ControlPlaneMessage = Static<typeof ControlPlaneMessage>;
