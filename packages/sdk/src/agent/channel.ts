import {
  CHANNEL_CLOSE,
  HOST_TOKEN_HEADER,
  ControlPlaneMessage,
  OUTCOME_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  type AgentMessage,
  type CommandMessage,
  type HeartbeatMetrics,
  type Rejected,
  type Welcome,
} from "@muster/contract";
import { Check } from "@sinclair/typebox/value";
import WebSocket from "ws";
import { pinErrorOf, type CertificatePinError, type PinnedTls } from "./tls.js";

export interface ChannelEvents {
  welcome(welcome: Welcome): void;
  command(command: CommandMessage): void;
  /** The control plane holds the result of this command (protocol 3). */
  resultAck(id: string): void;
  /**
   * The channel ended; `rejected` is set when the control plane refused this
   * agent's protocol, `pinMismatch` when its certificate is not the pinned one (both fatal).
   */
  closed(info: { code: number; reason: string; rejected: Rejected | null; pinMismatch: CertificatePinError | null }): void;
}

/**
 * The agent's end of the channel (one socket): dials
 * `GET /v1/hosts/{id}/channel` with the host token in `X-Host-Token`, says
 * hello, and reports what the control plane says. Redialing is HostAgent's job.
 */
export class AgentChannel {
  private readonly ws: WebSocket;
  private rejected: Rejected | null = null;
  private ended = false;
  /** A ping went out with the last heartbeat and no pong has come back yet. */
  private awaitingPong = false;
  /** The control plane's protocol, from its welcome (1 when it did not say). */
  private peerProtocol = 1;

  constructor(
    controlPlane: string,
    hostId: string,
    token: string,
    agentVersion: string,
    private readonly events: ChannelEvents,
    userAgent?: string,
    tls?: PinnedTls["options"],
  ) {
    const url = `${controlPlane.replace(/^http/, "ws")}/v1/hosts/${encodeURIComponent(hostId)}/channel`;
    this.ws = new WebSocket(url, {
      headers: { [HOST_TOKEN_HEADER]: token, ...(userAgent ? { "user-agent": userAgent } : {}) },
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
      ...tls,
    });
    this.ws.on("open", () => this.send({ type: "hello", protocol_version: PROTOCOL_VERSION, agent_version: agentVersion }));
    this.ws.on("message", (data, isBinary) => this.receive(isBinary ? "" : data.toString()));
    this.ws.on("pong", () => (this.awaitingPong = false));
    this.ws.on("close", (code, reason) => this.end(code, reason.toString(), null));
    // A refused upgrade or an unreachable control plane: "close" follows only if the socket opened.
    this.ws.on("error", (error) => this.end(1006, error.message, pinErrorOf(error)));
  }

  /**
   * Sends a heartbeat, with a ping to prove the socket still carries traffic.
   * If the previous beat's ping got no pong within a whole interval the socket
   * is dead without having said so (a NAT or firewall dropped it): it is
   * dropped, and false tells the caller to send this beat over HTTP.
   */
  heartbeat(metrics: HeartbeatMetrics | undefined, sentAt: Date): boolean {
    if (this.awaitingPong) {
      this.ws.terminate();
      return false;
    }
    this.awaitingPong = true;
    this.ws.ping();
    this.send({
      type: "heartbeat",
      ...(metrics ? { metrics } : {}),
      // A version-1 control plane refuses fields it does not know.
      ...(this.peerProtocol >= 2 ? { sent_at: sentAt.toISOString() } : {}),
    });
    return true;
  }

  /** Whether the control plane acknowledges results (protocol 3 and later); an older one never does. */
  get acknowledgesResults(): boolean {
    return this.peerProtocol >= OUTCOME_PROTOCOL_VERSION;
  }

  ack(id: string): void {
    this.send({ type: "ack", id });
  }

  result(id: string, outcome: { ok: true; result?: unknown } | { ok: false; error: string }): void {
    this.send({ type: "result", id, ...outcome });
  }

  close(): void {
    this.ws.close(1000, "agent stopping");
    this.end(1000, "agent stopping", null);
  }

  private send(message: AgentMessage): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      message = undefined;
    }
    // Checked by walking the schema, not with a compiled checker: a few messages a minute do not pay for the compiler's code and start-up.
    if (!Check(ControlPlaneMessage, message)) return void this.ws.close(CHANNEL_CLOSE.badMessage, "unknown message");
    if (message.type === "welcome") {
      this.peerProtocol = message.protocol_version ?? 1;
      this.events.welcome(message);
    }
    else if (message.type === "rejected") this.rejected = message;
    else if (message.type === "result_ack") this.events.resultAck(message.id);
    else this.events.command(message);
  }

  private end(code: number, reason: string, pinMismatch: CertificatePinError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.ws.removeAllListeners("message");
    this.ws.on("error", () => {});
    this.events.closed({ code, reason, rejected: code === CHANNEL_CLOSE.protocolTooOld ? this.rejected : null, pinMismatch });
  }
}
