import { randomUUID } from "node:crypto";
import {
  AgentMessage,
  CHANNEL_CLOSE,
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
import { completeCommand, markDelivered, waitingCommands } from "../services/commands.js";
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
 * is sent once per session; it is `delivered` when the agent acknowledges it,
 * so one sent on a socket that died unacknowledged goes again on the next.
 */
export class ChannelSession {
  readonly id = randomUUID();
  readonly hostId: string;
  lastSeenMs: number;
  private state: "hello" | "opening" | "open" | "closed" = "hello";
  private readonly helloTimer: NodeJS.Timeout;
  /** Commands sent on this socket and not yet acknowledged. */
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

  /** Sends the host's waiting commands; calls that arrive meanwhile make it look again rather than overlap. */
  async deliver(): Promise<void> {
    if (this.state !== "open") return;
    if (this.delivering) {
      this.deliverAgain = true;
      return;
    }
    this.delivering = true;
    try {
      do {
        this.deliverAgain = false;
        for (const row of await waitingCommands(this.deps.db, this.hostId, this.deps.clock.now())) {
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
          this.sent.delete(message.id);
          return await markDelivered(this.deps, this.hostId, message.id, this.deps.clock.now());
        case "result":
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

  private async result(outcome: CommandResult): Promise<void> {
    this.sent.delete(outcome.id);
    await completeCommand(this.deps, this.hostId, outcome, this.deps.clock.now());
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
