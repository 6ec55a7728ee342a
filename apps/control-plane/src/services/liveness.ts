import type { HeartbeatMetrics } from "@muster/contract";
import { and, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { hosts } from "../db/schema/index.js";
import { DomainError, forbidden, notFound, unauthorized } from "../errors.js";
import type { HostClaims } from "../auth/host-tokens.js";
import { recordAudit, SYSTEM_ACTOR } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { BoundedMap, BoundedSet } from "../lib/bounded.js";
import { CredentialCache } from "./credential-state.js";
import { recordHostEvents } from "./host-events.js";
import { holdLease, releaseLease } from "./leases.js";
import { LIVENESS_SHARDS, SERVING_SEEN_KEY, SERVING_SINCE_KEY } from "./kv-keys.js";
import { LivenessSet } from "./liveness-set.js";

const SWEEPER_LEASE = "offline-sweeper";
const LEASE_TTL_MS = 5_000;
const SWEEP_BATCH = 1_000;
/** Each sweep round pops this many hosts at most from each liveness shard, SWEEP_BATCH in all. */
const SWEEP_BATCH_PER_SHARD = Math.ceil(SWEEP_BATCH / LIVENESS_SHARDS);
/** How long a beat may wait in this process before its score reaches the KV store. */
export const SCORE_FLUSH_MS = 100;
/** The sweeper's allowance for beats still waiting in some process (the flush, plus room for a stalled event loop). */
export const UNFLUSHED_ALLOWANCE_MS = 5 * SCORE_FLUSH_MS;
const KNOWN_HOSTS_MAX = 1_000_000;
/** Online transitions written in one transaction at most (each may be an event, and a transaction holds 65,536 at most). */
const ONLINE_BATCH_MAX = 10_000;
/**
 * How often, at most, a host's beat time alone is written to PostgreSQL: every
 * BEAT_PERSIST_MS, or twice per offline window when that is shorter, so a live
 * host's stored time never looks silent to the sweep of hosts the KV store
 * lost. The KV store holds the exact time for reads and the sweeper; the
 * database needs it for hosts that left the liveness set (the offline
 * transition writes it) and for a KV store that lost its data (the start-up
 * grace covers the gap). Per-row writes, not requests, are what a large fleet
 * costs the database.
 */
export const BEAT_PERSIST_MS = 60_000;

/** The serving-period key (refreshed at every sweep) outlives its last refresher by this much at most (see servingTtlMs). */
const SERVING_TTL_MAX_MS = 10_000;
/** The longest pause between an agent's retries (SPEC §7: backoff doubling from 1 s, capped at 60 s). */
const AGENT_RETRY_CAP_MS = 60_000;
/** Below this many silent hosts the mass-silence breaker never holds a sweep (small fleets flip freely). */
const MASS_SILENCE_MIN_HOSTS = 10;
/** Room a deferred first beat keeps before its host's deadline, for its own trip and the sweeper's allowance. */
const FIRST_BEAT_MARGIN_S = 5;

const REVOKED = "host credentials were revoked; refresh them, or register the host again if the refresh is refused";

interface PendingOnline {
  at: Date;
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

/** What a beat carries besides the host's word that it lives. */
export interface BeatReport {
  metrics?: HeartbeatMetrics | undefined;
  /** The agent's clock when it sent the beat (RFC 3339); see AGENT_CLOCK_HEADER. */
  agentClock?: string | undefined;
}

interface PendingBeat {
  at: number;
  metrics: HeartbeatMetrics | undefined;
  /** The host's clock minus ours at this beat; undefined when the beat did not say. */
  skewMs: number | undefined;
}

interface PersistedBeat {
  at: number;
  skewMs: number | undefined;
}

/**
 * A changed skew is written at once only when it moved by this much: the
 * measurement includes the request's one-way trip, so smaller moves are noise.
 */
const SKEW_RESOLUTION_MS = 1_000;
/** Clocks further off than this are not clocks; such a reading is ignored. */
const SKEW_MAX_MS = 100 * 365 * 24 * 3600 * 1000;

/** The host's clock minus ours, from the agent's reading taken when it sent the beat. */
function clockSkewMs(agentClock: string | undefined, receivedAtMs: number): number | undefined {
  if (agentClock === undefined) return undefined;
  const skew = Date.parse(agentClock) - receivedAtMs;
  return Math.abs(skew) <= SKEW_MAX_MS ? skew : undefined;
}

/**
 * Host liveness. A heartbeat writes nothing synchronously once its host is
 * known to this process: its time joins two batches, one that reaches the KV
 * store's liveness sorted set (shared by every control plane) every
 * SCORE_FLUSH_MS, and one that reaches PostgreSQL every `heartbeatFlushMs`
 * (metrics at every flush, the time alone less often: see BEAT_PERSIST_MS).
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
  /** The beat time and skew this process last wrote to PostgreSQL, per host. */
  private persisted = new BoundedMap<string, PersistedBeat>(KNOWN_HOSTS_MAX);
  /** Hosts this process has put into the liveness set; their later beats are batched. */
  private known = new BoundedSet<string>(KNOWN_HOSTS_MAX);
  private pendingScores = new Map<string, number>();
  private onlineQueue = new Map<string, PendingOnline>();
  private onlineWriter: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  /** Each loop's run in progress; a loop never overlaps itself, and loops never wait for each other. */
  private inFlight = new Map<string, Promise<unknown>>();
  private readonly credentials: CredentialCache;
  private readonly set: LivenessSet;
  /** Since when some control plane has served without a break, as last seen (see markServing). */
  private servingSince: number;
  /** When the current mass silence was first seen by this process's sweeps. */
  private massSilenceSince: number | null = null;
  /** When this process's last sweep that got through began: both stores were reachable then (see startPeriod). */
  private lastSweptAt: number | null = null;
  /** A sweep failed (a store unreachable, most likely): the next sweep that gets through starts a new serving period. */
  private storeTroubleSeen = false;

  constructor(
    private readonly deps: ServiceDeps,
    /** Names this process in the sweeper lease. */
    private readonly instanceId: string,
    /** When this process began serving; the serving period starts here if no other process is serving. */
    private readonly startedAt: Date,
  ) {
    this.credentials = new CredentialCache(deps.db, deps.kv);
    this.set = new LivenessSet(deps.kv);
    this.servingSince = startedAt.getTime();
  }

  /** Whether beats are answered from this process's copy of credential states (see CredentialCache). */
  get credentialsTrusted(): boolean {
    return this.credentials.trusted;
  }

  /**
   * Whether a verified host token still speaks for the host in the path: 403
   * for another host, 404 for a deleted one, 401 for revoked credentials. Every
   * host call over HTTP or the channel passes here.
   */
  async authorize(claims: HostClaims, pathHostId: string): Promise<void> {
    if (claims.hostId !== pathHostId) throw forbidden("the host token belongs to another host than the one in the path");
    const state = await this.credentials.get(claims.hostId);
    if (state.kind === "deleted") throw notFound("host");
    if (state.kind === "none" || state.family !== claims.family) throw unauthorized(REVOKED);
  }

  async heartbeat(claims: HostClaims, pathHostId: string, report: BeatReport): Promise<void> {
    await this.authorize(claims, pathHostId);
    const known = this.known.has(claims.hostId);
    if (!known) await this.admitFirstBeat(claims.hostId);
    const at = this.record(claims.hostId, report);
    if (known) return;
    const wasAbsent = await this.set.add(claims.hostId, at);
    this.known.add(claims.hostId);
    if (wasAbsent) await this.cameBack(claims.hostId, at);
  }

  /**
   * The common beat, decided without waiting for anything: a host this process
   * knows, whose credentials it holds a trusted copy of, sending no metrics.
   * Records it and answers true; false means "not sure", and the caller takes
   * the full path (heartbeat()), which gives the definite answer.
   */
  recordKnownBeat(claims: HostClaims, pathHostId: string, agentClock: string | undefined): boolean {
    if (claims.hostId !== pathHostId || !this.known.has(pathHostId)) return false;
    const state = this.credentials.peek(pathHostId);
    if (state?.kind !== "live" || state.family !== claims.family) return false;
    this.record(pathHostId, { agentClock });
    return true;
  }

  /** Puts an accepted beat in the batches (a known host's score too) and returns its time. */
  private record(hostId: string, report: BeatReport): number {
    const at = this.deps.clock.now().getTime();
    const previous = this.batch.get(hostId);
    this.batch.set(hostId, {
      at,
      metrics: report.metrics ?? previous?.metrics,
      skewMs: clockSkewMs(report.agentClock, at) ?? previous?.skewMs,
    });
    this.deps.metrics.heartbeats.inc();
    if (this.known.has(hostId)) this.pendingScores.set(hostId, at);
    return at;
  }

  /** Spreads first beats when paced (see Pacing): refuses one without room with 429 and the wait. */
  private async admitFirstBeat(hostId: string): Promise<void> {
    const now = this.deps.clock.now().getTime();
    if (this.deps.pacing.takeFirstBeat(now)) return;
    const [lastBeat] = await this.set.scores([hostId]);
    // A tracked host turns offline a window after its last beat; one the KV store lost, a window after the serving period began.
    const deadline = (lastBeat ?? this.servingSince) + this.deps.pacing.offlineAfterS() * 1000;
    const waitS = this.deps.pacing.firstBeatWaitS((deadline - now) / 1000 - FIRST_BEAT_MARGIN_S);
    if (waitS === 0) return;
    this.deps.metrics.firstBeatsDeferred.inc();
    throw new DomainError("rate_limited", `the control plane is taking in its fleet at a paced rate; beat again in ${waitS} s`, waitS);
  }

  /** A beat found its host out of the liveness set: it is online again (or for the first time). */
  private async cameBack(hostId: string, at: number): Promise<void> {
    try {
      await this.markOnline(hostId, new Date(at));
    } catch (error) {
      // Leave the host out of the set, so its next beat tries the transition again.
      this.known.delete(hostId);
      await this.set.remove(hostId).catch(() => {});
      throw error;
    }
  }

  /** Sends the batched beats' times to the liveness set; hosts a sweeper removed meanwhile come back online. */
  async flushScores(): Promise<void> {
    if (this.pendingScores.size === 0) return;
    const scores = this.pendingScores;
    this.pendingScores = new Map();
    const { added, unsent, error } = await this.set.addMany(scores);
    // Keep the scores of shards that could not be reached for the next flush, unless newer ones arrived meanwhile.
    for (const [id, at] of unsent) if (!this.pendingScores.has(id)) this.pendingScores.set(id, at);
    await Promise.all(added.map((hostId) => this.cameBack(hostId, scores.get(hostId)!)));
    if (error !== undefined) throw error;
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
      const batch = new Map<string, PendingOnline>();
      for (const [hostId, pending] of this.onlineQueue) {
        if (batch.size === ONLINE_BATCH_MAX) break;
        batch.set(hostId, pending);
        this.onlineQueue.delete(hostId);
      }
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
      if (cameOnline.length > 0) {
        const rows = await tx.select().from(hosts).where(inArray(hosts.id, cameOnline.map((host) => host.id)));
        await recordHostEvents(tx, this.deps, "host.online", rows);
      }
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

  /**
   * Writes the batched beats that are due (new metrics, a skew that moved, or a
   * stored time older than BEAT_PERSIST_MS) to PostgreSQL in one statement;
   * `all` writes every one, as a stopping process does.
   */
  async flush({ all = false }: { all?: boolean } = {}): Promise<void> {
    const persistEveryMs = Math.min(BEAT_PERSIST_MS, (this.deps.pacing.offlineAfterS() * 1000) / 2);
    const beats = new Map<string, PendingBeat>();
    for (const [id, beat] of this.batch) {
      const persisted = this.persisted.get(id);
      const due =
        all ||
        persisted === undefined ||
        beat.metrics !== undefined ||
        (beat.skewMs !== undefined && (persisted.skewMs === undefined || Math.abs(beat.skewMs - persisted.skewMs) >= SKEW_RESOLUTION_MS)) ||
        beat.at - persisted.at >= persistEveryMs;
      if (due) {
        beats.set(id, beat);
        this.batch.delete(id);
      }
    }
    if (beats.size === 0) return;
    const rows = [...beats].map(([id, beat]) => ({
      id,
      at: new Date(beat.at).toISOString(),
      metrics: beat.metrics ?? null,
      skew_ms: beat.skewMs ?? null,
    }));
    try {
      await this.deps.db.execute(sql`
        update ${hosts} as h
        set last_heartbeat_at = greatest(h.last_heartbeat_at, v.at),
            metrics = coalesce(v.metrics, h.metrics),
            clock_skew_ms = coalesce(v.skew_ms, h.clock_skew_ms)
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id text, at timestamptz, metrics jsonb, skew_ms bigint)
        where h.id = v.id and h.deleted_at is null`);
    } catch (error) {
      // Keep the beats for the next flush, unless newer ones arrived meanwhile.
      for (const [id, beat] of beats) if (!this.batch.has(id)) this.batch.set(id, beat);
      throw error;
    }
    for (const [id, beat] of beats) this.persisted.set(id, { at: beat.at, skewMs: beat.skewMs ?? this.persisted.get(id)?.skewMs });
  }

  /** One pass of the offline sweeper; returns how many hosts it marked offline. */
  async sweepOnce(): Promise<number> {
    const now = this.deps.clock.now();
    try {
      const marked = await this.sweep(now);
      this.lastSweptAt = now.getTime();
      return marked;
    } catch (error) {
      this.storeTroubleSeen = true;
      throw error;
    }
  }

  private async sweep(now: Date): Promise<number> {
    // The lease first: it reaches the database, so a period restarted after a store outage (see markServing) waits for both stores.
    const leased = await this.holdLease(now);
    // Every process sweeps, so every process marks the serving period, lease or not.
    const servingSince = await this.markServing(now.getTime());
    if (!leased) return 0;
    await this.flushScores();
    const offlineAfterMs = this.deps.pacing.offlineAfterS() * 1000;
    // After the control planes were all down, every host gets a full window to report in before any turns offline.
    if (now.getTime() - servingSince < offlineAfterMs) return 0;
    const deadline = new Date(now.getTime() - offlineAfterMs - UNFLUSHED_ALLOWANCE_MS);
    if (await this.holdMassSilence(now.getTime(), deadline.getTime(), offlineAfterMs)) return 0;
    let marked = 0;
    for (let more = true; more; ) {
      const popped = await this.set.popDue(deadline.getTime(), SWEEP_BATCH_PER_SHARD);
      for (const { member } of popped.due) this.known.delete(member);
      marked += await this.markOffline(new Map(popped.due.map((entry) => [entry.member, entry.score])), deadline);
      more = popped.more;
    }
    marked += await this.sweepUntracked(deadline);
    return marked;
  }

  /**
   * Notes that this process serves, and returns since when some control plane
   * has served without a break: the shared key's value, or a new period (see
   * startPeriod) when the key had lapsed (every process was gone), was lost
   * with the KV store's data, or this process's last sweep failed.
   *
   * A store outage breaks the period too. While the KV store or the database
   * is unreachable, beats are refused (first beats in a process need both) or
   * cannot be recorded, so hosts' last beats go stale through no fault of
   * theirs. The first process whose sweep gets through again starts a new
   * period, overwriting the shared key: every process, the lease holder
   * included, reads the period from that key, so the fleet gets its window
   * whichever process saw the outage. Each recovery starts one again, so while
   * a store flaps no host turns offline: offline marks come late rather than
   * blame hosts for the control plane's trouble (each new period is logged).
   */
  private async markServing(now: number): Promise<number> {
    const since = this.storeTroubleSeen ? null : await this.deps.kv.get(SERVING_SINCE_KEY);
    // Extended, not rewritten: a new period another process starts meanwhile must not be overwritten with this one.
    if (since === null || !(await this.deps.kv.expire(SERVING_SINCE_KEY, this.servingTtlMs()))) return this.startPeriod(now);
    await this.deps.kv.set(SERVING_SEEN_KEY, String(now));
    this.servingSince = Number(since);
    return this.servingSince;
  }

  /**
   * Starts a serving period after a break (or at the first start). Hosts kept
   * retrying through the break with doubling pauses, so one may next try up to
   * twice as long as the break lasted after it ended; a restarted process also
   * listens a moment after its period begins. The period starts three times
   * the break later (AGENT_RETRY_CAP_MS at most), and the fleet gets a full
   * window after that. The break is measured from this process's last sweep that got
   * through, or, for a process just started, from the last mark of any
   * (SERVING_SEEN_KEY).
   */
  private async startPeriod(now: number): Promise<number> {
    // Serving resumed when this process started, unless it has got through a sweep since, or tried and failed.
    const resumedAt = this.lastSweptAt === null && !this.storeTroubleSeen ? this.startedAt.getTime() : now;
    // A process whose sweeps never got through had both stores at its start (it opened them there).
    const lastSeen =
      this.lastSweptAt ?? (this.storeTroubleSeen ? this.startedAt.getTime() : Number((await this.deps.kv.get(SERVING_SEEN_KEY)) ?? resumedAt));
    const breakMs = Math.max(0, resumedAt - lastSeen);
    const since = resumedAt + Math.min(AGENT_RETRY_CAP_MS, 3 * breakMs);
    await this.deps.kv.set(SERVING_SINCE_KEY, String(since), { ttlMs: this.servingTtlMs() });
    await this.deps.kv.set(SERVING_SEEN_KEY, String(now));
    if (breakMs > 0) {
      this.deps.logger.warn(
        { break_ms: breakMs, offline_marks_from: new Date(since + this.deps.pacing.offlineAfterS() * 1000).toISOString() },
        "the control plane's serving was broken (a store was unreachable, or every process was gone): the fleet gets a full offline window to report in again",
      );
    }
    this.storeTroubleSeen = false;
    this.servingSince = since;
    return since;
  }

  /**
   * A break of every process longer than this starts a new period. Hosts retry
   * with doubling pauses through a break, so one of a third of a window can
   * already cost a host its window; the key must still survive the time
   * between two sweeps.
   */
  private servingTtlMs(): number {
    const third = (this.deps.pacing.offlineAfterS() * 1000) / 3;
    return Math.min(SERVING_TTL_MAX_MS, Math.max(2 * this.deps.config.sweepIntervalMs, third));
  }

  /**
   * The mass-silence breaker. When more than `massOfflinePercent` of the
   * tracked fleet is past its deadline at once, the likelier cause is this
   * side (a network partition, a stalled control plane, a store that lost
   * beats), not that many hosts died together. The transitions are held (with
   * an error log and the muster_offline_sweep_held gauge at 1) for one more
   * window, so healthy hosts can report in; a silence that outlasts it is real,
   * and its hosts are marked offline.
   */
  private async holdMassSilence(nowMs: number, deadlineMs: number, offlineAfterMs: number): Promise<boolean> {
    const { due, tracked } = await this.set.counts(deadlineMs);
    const massive = due >= MASS_SILENCE_MIN_HOSTS && due * 100 > tracked * this.deps.config.massOfflinePercent;
    if (!massive) {
      this.massSilenceSince = null;
      this.deps.metrics.offlineSweepHeld.set(0);
      return false;
    }
    if (this.massSilenceSince === null) {
      this.massSilenceSince = nowMs;
      this.deps.logger.error(
        { due, tracked, percent: this.deps.config.massOfflinePercent },
        "a large share of the fleet went silent at once: holding offline transitions for one window (a network or control-plane fault is likelier than that many hosts failing)",
      );
    }
    if (nowMs - this.massSilenceSince < offlineAfterMs) {
      this.deps.metrics.offlineSweepHeld.set(1);
      return true;
    }
    this.deps.logger.warn({ due, tracked }, "the mass silence outlasted a full window: marking those hosts offline");
    this.deps.metrics.offlineSweepHeld.set(0);
    return false;
  }

  /**
   * Hosts online in the database but absent from the liveness set: the KV store
   * lost them (an embedded restart, a flushed Redis) or a sweeper died between
   * its two steps. A store that lost them lost the serving period too, so the
   * sweep waits a full window after start-up before it gets here.
   */
  private async sweepUntracked(deadline: Date): Promise<number> {
    const stale = await this.deps.db
      .select({ id: hosts.id })
      .from(hosts)
      .where(
        and(eq(hosts.status, "online"), isNull(hosts.deletedAt), or(isNull(hosts.lastHeartbeatAt), lte(hosts.lastHeartbeatAt, deadline))),
      )
      .limit(SWEEP_BATCH);
    if (stale.length === 0) return 0;
    const ids = stale.map((row) => row.id);
    const scores = await this.set.scores(ids);
    return this.markOffline(new Map(ids.filter((_, i) => scores[i] === null).map((id) => [id, null])), deadline);
  }

  /**
   * Marks the given hosts offline unless a beat after the deadline reached the
   * database meanwhile. Each host's last beat from the liveness set (when it had
   * one) is stored with the transition: the set no longer speaks for it.
   */
  private async markOffline(lastBeats: Map<string, number | null>, deadline: Date): Promise<number> {
    if (lastBeats.size === 0) return 0;
    const beatTimes = Object.fromEntries(
      [...lastBeats].flatMap(([id, at]) => (at === null ? [] : [[id, new Date(at).toISOString()]])),
    );
    return withTransaction(this.deps.db, async (tx) => {
      const now = this.deps.clock.now();
      const changed = await tx
        .update(hosts)
        .set({
          status: "offline",
          updatedAt: now,
          lastHeartbeatAt: sql`greatest(${hosts.lastHeartbeatAt}, (${JSON.stringify(beatTimes)}::jsonb ->> ${hosts.id})::timestamptz)`,
        })
        .where(
          and(
            inArray(hosts.id, [...lastBeats.keys()]),
            eq(hosts.status, "online"),
            isNull(hosts.deletedAt),
            or(isNull(hosts.lastHeartbeatAt), lte(hosts.lastHeartbeatAt, deadline)),
          ),
        )
        .returning();
      await recordHostEvents(tx, this.deps, "host.offline", changed);
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
  private holdLease(now: Date): Promise<boolean> {
    return holdLease(this.deps.db, SWEEPER_LEASE, this.instanceId, now, LEASE_TTL_MS);
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
    await this.flush({ all: true }).catch((error: unknown) => this.deps.logger.warn({ err: error }, "final heartbeat flush failed"));
    await releaseLease(this.deps.db, SWEEPER_LEASE, this.instanceId).catch(() => {});
    await this.credentials.stop();
  }
}
