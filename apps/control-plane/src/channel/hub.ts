import type { IncomingMessage, Server } from "node:http";
import type { Server as SecureServer } from "node:https";
import type { Duplex } from "node:stream";
import { CHANNEL_CLOSE } from "@muster/contract";
import { WebSocketServer } from "ws";
import { MAX_BODY_BYTES } from "../app.js";
import { DomainError } from "../errors.js";
import type { AppDeps } from "../http/env.js";
import type { Subscription } from "../kv/kv.js";
import { expireCommands, type BusMessage } from "../services/commands.js";
import { pruneIdempotencyKeys } from "../services/idempotency.js";
import { AGENT_CHANNEL_BUS, CREDENTIAL_CHANGES_CHANNEL, channelOwnerKey } from "../services/kv-keys.js";
import type { ChannelMetrics } from "./metrics.js";
import { ChannelSession } from "./session.js";
import { authenticateUpgrade, channelHostId, refuseUpgrade } from "./upgrade.js";

const SWEEP_MS = 1_000;
/** Idempotency keys past their lifetime are never answered; deleting them is housekeeping, done now and then. */
const PRUNE_MS = 60_000;
/** The owner key outlives any channel that keeps beating; it only arbitrates between channels of one host. */
const OWNER_TTL_MS = 24 * 3600 * 1000;

/**
 * This process's agent channels, at most one per host. Channels of one host on
 * several processes are settled through the KV store: a new channel writes its
 * ID as the host's owner and announces itself on the bus; a process holding an
 * older channel of that host reads the owner and closes its own unless it is
 * the owner, so of any number of racing channels exactly the last written
 * survives. Commands are announced on the same bus, and the process holding
 * the host's channel sends them. A host whose credentials change (deleted,
 * registered again, a refresh token reused) is announced on the credential
 * bus, and every process looks at its channels of that host at once.
 */
export class ChannelHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES, perMessageDeflate: false });
  private readonly sessions = new Map<string, ChannelSession>();
  private readonly pending = new Set<ChannelSession>();
  private subscription: Subscription | null = null;
  private credentialChanges: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private prunedAt = 0;

  constructor(
    private readonly deps: AppDeps,
    private readonly metrics: ChannelMetrics,
  ) {}

  /** Serves channel upgrades on the server; other upgrade requests are refused. */
  attach(server: Server | SecureServer): void {
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => void this.upgrade(request, socket, head));
  }

  /** The host's channel on this process, if it is open. */
  session(hostId: string): ChannelSession | undefined {
    return this.sessions.get(hostId);
  }

  get size(): number {
    return this.sessions.size;
  }

  async start(): Promise<void> {
    this.subscription = await this.deps.kv.subscribe(
      AGENT_CHANNEL_BUS,
      (raw) => void this.onBus(raw),
      // A lost claim leaves an old channel open until its next message or the new one's; nothing else needs repair.
      () => {},
    );
    // Lost announcements are covered by the check before every command and result (ChannelSession.credentialsLive).
    this.credentialChanges = await this.deps.kv.subscribe(CREDENTIAL_CHANGES_CHANNEL, (hostId) => this.recheck(hostId), () => {});
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
  }

  /** Closes every channel (agents fall back to HTTP and redial another process) and leaves the bus. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const session of [...this.sessions.values(), ...this.pending]) session.close(1001, "control plane shutting down");
    await this.subscription?.close();
    await this.credentialChanges?.close();
    this.subscription = null;
    this.credentialChanges = null;
  }

  async adopt(session: ChannelSession): Promise<void> {
    this.pending.delete(session);
    const previous = this.sessions.get(session.hostId);
    this.sessions.set(session.hostId, session);
    this.metrics.channels.set(this.sessions.size);
    previous?.close(CHANNEL_CLOSE.replaced, "replaced by a newer channel of this host");
    await this.deps.kv.set(channelOwnerKey(session.hostId), session.id, { ttlMs: OWNER_TTL_MS });
    await this.deps.kv.publish(AGENT_CHANNEL_BUS, JSON.stringify({ kind: "claim", host: session.hostId, channel: session.id } satisfies BusMessage));
  }

  closed(session: ChannelSession): void {
    this.pending.delete(session);
    if (this.sessions.get(session.hostId) === session) this.sessions.delete(session.hostId);
    this.metrics.channels.set(this.sessions.size);
  }

  /** The host's credentials changed: its channels here close unless they still speak for it (4401 revoked, 4404 deleted). */
  private recheck(hostId: string): void {
    const local = [...this.pending].filter((session) => session.hostId === hostId);
    const open = this.sessions.get(hostId);
    if (open) local.push(open);
    for (const session of local) {
      session.credentialsLive().catch((error: unknown) => {
        this.deps.logger.warn({ err: error, host_id: hostId }, "cannot check a channel's credentials after a change; checked again before its next command");
      });
    }
  }

  private async upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => socket.destroy());
    const hostId = channelHostId(request.url);
    if (hostId === null) return refuseUpgrade(socket, new DomainError("not_found", `no WebSocket endpoint at ${request.url}`));
    try {
      const claims = await authenticateUpgrade(this.deps, request, hostId);
      this.wss.handleUpgrade(request, socket, head, (ws) => {
        this.pending.add(new ChannelSession(ws, claims, this.deps, this.metrics, this));
      });
    } catch (error) {
      this.metrics.rejections.inc({ reason: "refused_upgrade" });
      if (!(error instanceof DomainError)) this.deps.logger.warn({ err: error, host_id: hostId }, "agent channel upgrade failed");
      refuseUpgrade(socket, error);
    }
  }

  private async onBus(raw: string): Promise<void> {
    let message: BusMessage;
    try {
      message = JSON.parse(raw) as BusMessage;
    } catch {
      return this.deps.logger.warn({ message: raw.slice(0, 200) }, "malformed message on the agent channel bus; ignored");
    }
    const local = this.sessions.get(message.host);
    if (!local) return;
    try {
      if (message.kind === "commands") return await local.deliver();
      if (message.channel === local.id) return;
      const owner = await this.deps.kv.get(channelOwnerKey(message.host));
      if (owner !== local.id && this.sessions.get(message.host) === local) {
        local.close(CHANNEL_CLOSE.replaced, "replaced by a newer channel of this host");
      }
    } catch (error) {
      this.deps.logger.warn({ err: error, host_id: message.host }, "agent channel bus message failed");
    }
  }

  /** Closes channels whose token expired or that fell silent, ends overdue commands, and now and then forgets old idempotency keys. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = this.deps.clock.now();
      const silentSince = now.getTime() - this.deps.pacing.offlineAfterS() * 1000;
      for (const session of this.sessions.values()) {
        if (session.claims.expiresAt <= now) session.close(CHANNEL_CLOSE.unauthorized, "host token expired; redial with a fresh one");
        else if (session.lastSeenMs < silentSince) session.close(CHANNEL_CLOSE.silent, "no heartbeat within the offline window");
      }
      await expireCommands(this.deps, now);
      if (now.getTime() - this.prunedAt >= PRUNE_MS) {
        this.prunedAt = now.getTime();
        await pruneIdempotencyKeys(this.deps.db, now);
      }
    } catch (error) {
      this.deps.logger.warn({ err: error }, "agent channel sweep failed; retrying on the next tick");
    } finally {
      this.sweeping = false;
    }
  }
}
