import { randomUUID } from "node:crypto";
import {
  AgentMessage,
  CHANNEL_CLOSE,
  OUTCOME_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  type CommandResult,
  type ControlPlaneMessage,
  type Hello,
} from "@muster/contract";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { eq } from "drizzle-orm";
import type { RawData, WebSocket } from "ws";
import type { HostClaims } from "../auth/host-tokens.js";
import { hosts } from "../db/schema/index.js";
import { DomainError } from "../errors.js";
import type { AppDeps } from "../http/env.js";
import { unstorableJson } from "../lib/json-text.js";
import { commandsToSend, DELIVERY_BATCH, markDelivered, recordResult } from "../services/commands.js";
import { credentialState } from "../services/credential-state.js";
import { byCreation, type Cursor } from "../services/pagination.js";
import { isTooOld, tooOldMessage } from "../services/protocol.js";
import type { ChannelMetrics } from "./metrics.js";

const checkMessage = TypeCompiler.Compile(AgentMessage);

/** What the session needs from the hub that holds it. */
export interface SessionOwner {
  adopt(session: ChannelSession): Promise<void>;
  closed(session: ChannelSession): void;
}

/**
 * One agent's WebSocket: waits for the hello, then feeds heartbeats to the
 * liveness service and carries commands down and their results up. A command
 * is sent at most once per session; it is `delivered` when the agent
 * acknowledges it. A new session sends every unfinished command again: those
 * still queued (a socket died before the ack), and to agents of protocol 3 or
 * later, which remember what they ran, those delivered without a result (the
 * result was lost with a socket or a control plane). Results are acknowledged
 * to those agents once dealt with, so they stop sending them.
 * The host's credentials are checked before every command sent and every ack
 * or result taken (credentialsLive), and by the liveness service for every
 * beat, so a channel whose credentials died carries nothing more, even before
 * the hub closes it.
 */
export class ChannelSession {
  readonly id = randomUUID();
  readonly hostId: string;
  lastSeenMs: number;
  private state: "hello" | "opening" | "open" | "closed" = "hello";
  private readonly helloTimer: NodeJS.Timeout;
  /** The protocol the agent said it speaks (from its hello). */
  private protocol = 0;
  /** Commands sent on this socket whose result has not come back on it. */
  private readonly sent = new Set<string>();
  private delivering = false;
  private deliverAgain = false;

  constructor(
    private readonly ws: WebSocket,
    readonly claims: HostClaims,
    private readonly deps: AppDeps,
    private readonly metrics: ChannelMetrics,
    private readonly owner: SessionOwner,
  ) {
    this.hostId = claims.hostId;
    this.lastSeenMs = deps.clock.now().getTime();
    this.helloTimer = setTimeout(() => {
      this.metrics.rejections.inc({ reason: "hello_timeout" });
      this.close(CHANNEL_CLOSE.helloTimeout, "no hello in time");
    }, deps.config.channelHelloTimeoutMs);
    ws.on("message", (data, isBinary) => void this.receive(data, isBinary));
    ws.on("close", () => this.ended());
    ws.on("error", (error) => deps.logger.debug({ err: error, host_id: this.hostId }, "agent channel socket error"));
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  close(code: number, reason: string): void {
    if (this.state === "closed") return;
    this.ended();
    this.ws.close(code, reason);
  }

  /**
   * Whether the credentials the channel was opened with are still the host's
   * live ones, read from the KV store rather than a process's copy (which a
   * missed announcement could leave stale): commands carry operators' secrets.
   * When they are not, closes the channel: 4404 for a deleted host, 4401 for
   * revoked credentials. A beat does not come here: the liveness service checks
   * it on its own hot path.
   */
  async credentialsLive(): Promise<boolean> {
    const state = await credentialState(this.deps.db, this.deps.kv, this.hostId);
    if (state.kind === "live" && state.family === this.claims.family) return this.state !== "closed";
    if (state.kind === "deleted") this.close(CHANNEL_CLOSE.hostDeleted, "host deleted");
    else this.close(CHANNEL_CLOSE.unauthorized, "credentials revoked");
    return false;
  }

  /** Sends the host's unfinished commands not yet sent on this socket; calls that arrive meanwhile make it look again rather than overlap. */
  async deliver(): Promise<void> {
    if (this.state !== "open") return;
    if (this.delivering) {
      this.deliverAgain = true;
      return;
    }
    this.delivering = true;
    const resendDelivered = this.protocol >= OUTCOME_PROTOCOL_VERSION;
    try {
      do {
        this.deliverAgain = false;
        let after: Cursor | null = null;
        for (;;) {
          const rows = await commandsToSend(this.deps.db, this.hostId, this.deps.clock.now(), resendDelivered, after);
          if (rows.some((row) => !this.sent.has(row.id)) && !(await this.credentialsLive())) break;
          for (const row of rows) {
            if (this.sent.has(row.id) || this.state !== "open") continue;
            this.sent.add(row.id);
            this.send({
              type: "command",
              id: row.id,
              command_type: row.type,
              payload: row.payload ?? null,
              expires_at: row.expiresAt.toISOString(),
            });
          }
          const last = rows.at(-1);
          if (!last || rows.length < DELIVERY_BATCH || this.state !== "open") break;
          after = byCreation(last);
        }
      } while (this.deliverAgain && this.state === "open");
    } catch (error) {
      this.deps.logger.warn({ err: error, host_id: this.hostId }, "command delivery failed; retried when the next command or channel arrives");
    } finally {
      this.delivering = false;
    }
  }

  private ended(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this.helloTimer);
    this.owner.closed(this);
  }

  private send(message: ControlPlaneMessage): void {
    this.ws.send(JSON.stringify(message));
  }

  private async receive(data: RawData, isBinary: boolean): Promise<void> {
    if (this.state === "closed") return;
    this.lastSeenMs = this.deps.clock.now().getTime();
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString());
    } catch {
      message = undefined;
    }
    if (!checkMessage.Check(message)) return this.refuse("a message that is not JSON text of the channel protocol");
    const unstorable = unstorableJson(message, "message");
    if (unstorable) return this.refuse(unstorable);
    const expected = this.state === "hello";
    if ((message.type === "hello") !== expected) {
      return this.refuse(expected ? "the first message must be the hello" : `unexpected ${message.type} message`);
    }
    try {
      switch (message.type) {
        case "hello":
          return await this.hello(message);
        case "heartbeat":
          return await this.deps.liveness.heartbeat(this.claims, this.hostId, { metrics: message.metrics, agentClock: message.sent_at });
        case "ack":
          if (!(await this.credentialsLive())) return;
          return await markDelivered(this.deps, this.hostId, message.id, this.deps.clock.now());
        case "result":
          if (!(await this.credentialsLive())) return;
          return await this.result(message);
      }
    } catch (error) {
      this.failed(error, message.type);
    }
  }

  private async hello(hello: Hello): Promise<void> {
    clearTimeout(this.helloTimer);
    const { config } = this.deps;
    if (isTooOld(config, hello.protocol_version)) {
      this.metrics.rejections.inc({ reason: "protocol_too_old" });
      this.send({
        type: "rejected",
        code: "protocol_too_old",
        message: tooOldMessage(config, hello.protocol_version),
        min_protocol_version: config.minProtocolVersion,
        help_url: config.agentUpgradeUrl,
      });
      return this.close(CHANNEL_CLOSE.protocolTooOld, "protocol too old");
    }
    this.state = "opening";
    this.protocol = hello.protocol_version;
    await this.deps.db
      .update(hosts)
      .set({ agentVersion: hello.agent_version, protocolVersion: hello.protocol_version })
      .where(eq(hosts.id, this.hostId));
    if (this.state !== "opening") return;
    await this.owner.adopt(this);
    if (this.state !== "opening") return;
    this.state = "open";
    this.send({
      type: "welcome",
      host_id: this.hostId,
      heartbeat_interval_s: this.deps.pacing.intervalS(this.hostId),
      min_protocol_version: config.minProtocolVersion,
      protocol_version: PROTOCOL_VERSION,
    });
    await this.deliver();
  }

  /** Stores a result (the first one wins; see recordResult) and tells an agent that can hear it to stop sending it. */
  private async result(message: CommandResult): Promise<void> {
    await recordResult(this.deps, this.hostId, message.id, message, this.deps.clock.now());
    this.sent.delete(message.id);
    if (this.protocol >= OUTCOME_PROTOCOL_VERSION && this.state === "open") this.send({ type: "result_ack", id: message.id });
  }

  private refuse(why: string): void {
    if (this.state === "hello") this.metrics.rejections.inc({ reason: "bad_hello" });
    this.close(CHANNEL_CLOSE.badMessage, why.slice(0, 120));
  }

  /** A refused heartbeat means what it means over HTTP: the host is gone, or its credentials are. */
  private failed(error: unknown, what: string): void {
    if (error instanceof DomainError && error.code === "not_found") return this.close(CHANNEL_CLOSE.hostDeleted, "host deleted");
    if (error instanceof DomainError && (error.code === "unauthorized" || error.code === "forbidden")) {
      return this.close(CHANNEL_CLOSE.unauthorized, "credentials revoked");
    }
    // A paced first beat without room yet: the agent's next beat tries again, as over HTTP after a 429.
    if (error instanceof DomainError && error.code === "rate_limited") return;
    this.deps.logger.warn({ err: error, host_id: this.hostId, message: what }, "agent channel message failed");
    if (this.state === "opening") this.close(1011, "the control plane could not open the channel");
  }
}
