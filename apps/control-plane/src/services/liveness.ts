import type { HeartbeatMetrics } from "@muster/contract";
import { and, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { hosts, leases } from "../db/schema/index.js";
import { forbidden, notFound, unauthorized } from "../errors.js";
import type { HostClaims } from "../auth/host-tokens.js";
import { recordAudit, SYSTEM_ACTOR } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { CredentialCache } from "./credential-state.js";
import { LIVENESS_KEY } from "./kv-keys.js";

const SWEEPER_LEASE = "offline-sweeper";
const LEASE_TTL_MS = 5_000;
const SWEEP_BATCH = 1_000;
/** How long a beat may wait in this process before its score reaches the KV store. */
export const SCORE_FLUSH_MS = 100;
/** The sweeper's allowance for beats still waiting in some process (the flush, plus room for a stalled event loop). */
export const UNFLUSHED_ALLOWANCE_MS = 5 * SCORE_FLUSH_MS;
const KNOWN_HOSTS_MAX = 1_000_000;

const REVOKED = "host credentials were revoked; refresh them, or register the host again if the refresh is refused";

interface PendingOnline {
  at: Date;
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

interface PendingBeat {
  at: number;
  metrics: HeartbeatMetrics | undefined;
}

/**
 * Host liveness. A heartbeat writes nothing synchronously once its host is
 * known to this process: its time joins two batches, one that reaches the KV
 * store's liveness sorted set (shared by every control plane) every
 * SCORE_FLUSH_MS, and one that reaches PostgreSQL every `heartbeatFlushMs`.
 * A host's first beat in this process goes to the sorted set at once, so the
 * status change it may bring (offline → online) is written before the answer.
 *
 * The sweeper, run by whichever process holds the lease, removes hosts whose
 * last beat is past the deadline from the sorted set atomically and marks them
 * offline. Because a beat re-adds a removed host and then writes "online" with
 * its own time, and the offline write only touches hosts whose stored beat is
 * at or before the deadline, the two may race in either order and still agree.
 */
export class Liveness {
  private batch = new Map<string, PendingBeat>();
  /** Hosts this process has put into the liveness set; their later beats are batched. */
  private known = new Set<string>();
  private pendingScores = new Map<string, number>();
  private onlineQueue = new Map<string, PendingOnline>();
  private onlineWriter: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  /** Each loop's run in progress; a loop never overlaps itself, and loops never wait for each other. */
  private inFlight = new Map<string, Promise<unknown>>();
  private readonly credentials: CredentialCache;

  constructor(
    private readonly deps: ServiceDeps,
    /** Names this process in the sweeper lease. */
    private readonly instanceId: string,
    private readonly startedAt: Date,
  ) {
    this.credentials = new CredentialCache(deps.db, deps.kv);
  }

  async heartbeat(claims: HostClaims, pathHostId: string, metrics: HeartbeatMetrics | undefined): Promise<void> {
    if (claims.hostId !== pathHostId) throw forbidden("the host token belongs to another host than the one in the path");
    const state = await this.credentials.get(claims.hostId);
    if (state.kind === "deleted") throw notFound("host");
    if (state.kind === "none" || state.family !== claims.family) throw unauthorized(REVOKED);

    const at = this.deps.clock.now().getTime();
    this.batch.set(claims.hostId, { at, metrics: metrics ?? this.batch.get(claims.hostId)?.metrics });
    this.deps.metrics.heartbeats.inc();
    if (this.known.has(claims.hostId)) {
      this.pendingScores.set(claims.hostId, at);
      return;
    }
    const wasAbsent = await this.deps.kv.zAdd(LIVENESS_KEY, claims.hostId, at);
    if (this.known.size >= KNOWN_HOSTS_MAX) this.known.delete(this.known.values().next().value!);
    this.known.add(claims.hostId);
    if (wasAbsent) await this.cameBack(claims.hostId, at);
  }

  /** A beat found its host out of the liveness set: it is online again (or for the first time). */
  private async cameBack(hostId: string, at: number): Promise<void> {
    try {
      await this.markOnline(hostId, new Date(at));
    } catch (error) {
      // Leave the host out of the set, so its next beat tries the transition again.
      this.known.delete(hostId);
      await this.deps.kv.zRem(LIVENESS_KEY, [hostId]).catch(() => {});
      throw error;
    }
  }

  /** Sends the batched beats' times to the liveness set; hosts a sweeper removed meanwhile come back online. */
  async flushScores(): Promise<void> {
    if (this.pendingScores.size === 0) return;
    const scores = this.pendingScores;
    this.pendingScores = new Map();
    let returned: string[];
    try {
      returned = await this.deps.kv.zAddMany(
        LIVENESS_KEY,
        [...scores].map(([member, score]) => ({ member, score })),
      );
    } catch (error) {
      // Keep the scores for the next flush, unless newer ones arrived meanwhile.
      for (const [id, at] of scores) if (!this.pendingScores.has(id)) this.pendingScores.set(id, at);
      throw error;
    }
    await Promise.all(returned.map((hostId) => this.cameBack(hostId, scores.get(hostId)!)));
  }

  /**
   * First beat after registration or after an offline spell. Transitions are
   * group-committed: those that arrive while a write is under way share the
   * next one, so a fleet reporting in at once after a start costs a handful of
   * transactions rather than one per host.
   */
  private markOnline(hostId: string, at: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      const queued = this.onlineQueue.get(hostId);
      this.onlineQueue.set(hostId, {
        at: queued && queued.at > at ? queued.at : at,
        waiters: [...(queued?.waiters ?? []), { resolve, reject }],
      });
      this.onlineWriter ??= this.writeOnlineQueue().finally(() => (this.onlineWriter = null));
    });
  }

  private async writeOnlineQueue(): Promise<void> {
    while (this.onlineQueue.size > 0) {
      const batch = this.onlineQueue;
      this.onlineQueue = new Map();
      try {
        await this.writeOnline(batch);
        for (const { waiters } of batch.values()) for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        for (const { waiters } of batch.values()) for (const waiter of waiters) waiter.reject(error);
      }
    }
  }

  private async writeOnline(batch: Map<string, PendingOnline>): Promise<void> {
    await withTransaction(this.deps.db, async (tx) => {
      const previous = await tx
        .select({ id: hosts.id, status: hosts.status, teamId: hosts.teamId })
        .from(hosts)
        .where(and(inArray(hosts.id, [...batch.keys()]), isNull(hosts.deletedAt)))
        .for("update");
      const rows = previous.map((host) => ({ id: host.id, at: batch.get(host.id)!.at.toISOString() }));
      await tx.execute(sql`
        update ${hosts} as h
        set status = 'online',
            last_heartbeat_at = greatest(h.last_heartbeat_at, v.at),
            updated_at = case when h.status = 'online' then h.updated_at else v.at end
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id text, at timestamptz)
        where h.id = v.id`);
      const cameOnline = previous.filter((host) => host.status !== "online");
      await recordAudit(
        tx,
        this.deps,
        cameOnline.map((host) => ({
          actor: host.id,
          action: "host.online" as const,
          targetType: "host" as const,
          targetId: host.id,
          teamId: host.teamId,
          metadata: { previous: host.status },
        })),
      );
      this.deps.metrics.hostTransitions.inc({ to: "online" }, cameOnline.length);
    });
  }

  /** Writes the batched beats (and the latest metrics) to PostgreSQL in one statement. */
  async flush(): Promise<void> {
    if (this.batch.size === 0) return;
    const beats = this.batch;
    this.batch = new Map();
    const rows = [...beats].map(([id, beat]) => ({ id, at: new Date(beat.at).toISOString(), metrics: beat.metrics ?? null }));
    try {
      await this.deps.db.execute(sql`
        update ${hosts} as h
        set last_heartbeat_at = greatest(h.last_heartbeat_at, v.at),
            metrics = coalesce(v.metrics, h.metrics)
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id text, at timestamptz, metrics jsonb)
        where h.id = v.id and h.deleted_at is null`);
    } catch (error) {
      // Keep the beats for the next flush, unless newer ones arrived meanwhile.
      for (const [id, beat] of beats) if (!this.batch.has(id)) this.batch.set(id, beat);
      throw error;
    }
  }

  /** One pass of the offline sweeper; returns how many hosts it marked offline. */
  async sweepOnce(): Promise<number> {
    const now = this.deps.clock.now();
    if (!(await this.holdLease(now))) return 0;
    await this.flushScores();
    const offlineAfterMs = this.deps.pacing.offlineAfterS() * 1000;
    const deadline = new Date(now.getTime() - offlineAfterMs - UNFLUSHED_ALLOWANCE_MS);
    let marked = 0;
    for (;;) {
      const due = await this.deps.kv.zPopUpTo(LIVENESS_KEY, deadline.getTime(), SWEEP_BATCH);
      for (const { member } of due) this.known.delete(member);
      marked += await this.markOffline(due.map((entry) => entry.member), deadline);
      if (due.length < SWEEP_BATCH) break;
    }
    marked += await this.sweepUntracked(now, deadline, offlineAfterMs);
    return marked;
  }

  /**
   * Hosts online in the database but absent from the liveness set: the KV store
   * lost them (an embedded restart, a flushed Redis) or a sweeper died between
   * its two steps. They get one full offline window after this process started
   * to report in, so a control-plane restart never flips a healthy fleet offline.
   */
  private async sweepUntracked(now: Date, deadline: Date, offlineAfterMs: number): Promise<number> {
    if (now.getTime() - this.startedAt.getTime() < offlineAfterMs) return 0;
    const stale = await this.deps.db
      .select({ id: hosts.id })
      .from(hosts)
      .where(
        and(eq(hosts.status, "online"), isNull(hosts.deletedAt), or(isNull(hosts.lastHeartbeatAt), lte(hosts.lastHeartbeatAt, deadline))),
      )
      .limit(SWEEP_BATCH);
    if (stale.length === 0) return 0;
    const ids = stale.map((row) => row.id);
    const scores = await this.deps.kv.zScores(LIVENESS_KEY, ids);
    return this.markOffline(ids.filter((_, i) => scores[i] === null), deadline);
  }

  private async markOffline(hostIds: string[], deadline: Date): Promise<number> {
    if (hostIds.length === 0) return 0;
    return withTransaction(this.deps.db, async (tx) => {
      const now = this.deps.clock.now();
      const changed = await tx
        .update(hosts)
        .set({ status: "offline", updatedAt: now })
        .where(
          and(
            inArray(hosts.id, hostIds),
            eq(hosts.status, "online"),
            isNull(hosts.deletedAt),
            or(isNull(hosts.lastHeartbeatAt), lte(hosts.lastHeartbeatAt, deadline)),
          ),
        )
        .returning({ id: hosts.id, teamId: hosts.teamId, lastHeartbeatAt: hosts.lastHeartbeatAt });
      await recordAudit(
        tx,
        this.deps,
        changed.map((host) => ({
          actor: SYSTEM_ACTOR,
          action: "host.offline" as const,
          targetType: "host" as const,
          targetId: host.id,
          teamId: host.teamId,
          metadata: { last_heartbeat_at: host.lastHeartbeatAt?.toISOString() ?? null },
        })),
      );
      this.deps.metrics.hostTransitions.inc({ to: "offline" }, changed.length);
      return changed.length;
    });
  }

  /** Takes or renews the sweeper lease; a dead holder's lease lapses after LEASE_TTL_MS. */
  private async holdLease(now: Date): Promise<boolean> {
    const expiresAt = new Date(now.getTime() + LEASE_TTL_MS);
    const held = await this.deps.db
      .insert(leases)
      .values({ name: SWEEPER_LEASE, holder: this.instanceId, expiresAt })
      .onConflictDoUpdate({
        target: leases.name,
        set: { holder: this.instanceId, expiresAt },
        setWhere: or(eq(leases.holder, this.instanceId), lte(leases.expiresAt, now)),
      })
      .returning({ holder: leases.holder });
    return held.length > 0;
  }

  private async releaseLease(): Promise<void> {
    await this.deps.db.delete(leases).where(and(eq(leases.name, SWEEPER_LEASE), eq(leases.holder, this.instanceId)));
  }

  async start(): Promise<void> {
    await this.credentials.start();
    const every = (ms: number, task: () => Promise<unknown>, what: string) => {
      const timer = setInterval(() => {
        if (this.inFlight.has(what)) return;
        const run = task()
          .catch((error: unknown) => this.deps.logger.warn({ err: error }, `${what} failed; retrying on the next tick`))
          .finally(() => this.inFlight.delete(what));
        this.inFlight.set(what, run);
      }, ms);
      this.timers.push(timer);
    };
    every(SCORE_FLUSH_MS, () => this.flushScores(), "liveness score flush");
    every(this.deps.config.sweepIntervalMs, () => this.sweepOnce(), "offline sweep");
    every(this.deps.config.heartbeatFlushMs, () => this.flush(), "heartbeat flush");
  }

  /** Stops the loops, writes the last beats and hands the lease over at once. */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await Promise.all(this.inFlight.values());
    await this.flushScores().catch((error: unknown) => this.deps.logger.warn({ err: error }, "final liveness score flush failed"));
    await this.flush().catch((error: unknown) => this.deps.logger.warn({ err: error }, "final heartbeat flush failed"));
    await this.releaseLease().catch(() => {});
    await this.credentials.stop();
  }
}
