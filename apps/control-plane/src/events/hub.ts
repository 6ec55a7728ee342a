import { EVENTS_KEEPALIVE_S } from "@muster/contract";
import { Counter, Gauge } from "prom-client";
import type { Subscription } from "../kv/kv.js";
import { liveApiKeyIds } from "../services/api-keys.js";
import type { ServiceDeps } from "../services/context.js";
import { checkResumable, readReadyEvents, readyHead, streamStart, type EventFilter, type StoredEvent } from "../services/events.js";
import { EVENTS_CHANNEL } from "../services/kv-keys.js";
import { DomainError } from "../errors.js";
import { eventFrame, Subscriber, type EndReason } from "./subscriber.js";

const READ_BATCH = 1_000;
/** Events kept in memory for streams that resume from a moment ago (a reconnect), so they need not read the database. */
const RECENT_MAX = 4_096;
/** While events wait behind an older running transaction, the log is read again after this, doubling up to the cap. */
const HELD_RETRY_MS = 5;
const HELD_RETRY_CAP_MS = 200;

interface Recent {
  event: StoredEvent;
  frame: Uint8Array;
}

/**
 * This process's end of the event log. It tails the log in position order
 * (only events below the horizon: see services/events.ts) and offers each
 * event to this process's streams of the event's team and to admins'. A
 * transaction that wrote events announces itself on the KV store's pub/sub
 * once committed, which wakes the hub of every process; the hub also reads
 * every pollMs in case an announcement was lost.
 *
 * A stream that starts from a position catches up first (from memory when
 * the position is recent, else from the database), then joins the live
 * tail; the handover is exact, so no event is sent twice or skipped.
 */
export class EventHub {
  /** The last position this hub has offered to its streams. */
  private cursor = 0n;
  private readonly admins = new Set<Subscriber>();
  private readonly byTeam = new Map<string, Set<Subscriber>>();
  private recent: Recent[] = [];
  /** Every event after this position is in `recent`. */
  private recentFloor = 0n;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private heldRetryMs = HELD_RETRY_MS;
  private heldTimer: NodeJS.Timeout | null = null;
  private timers: NodeJS.Timeout[] = [];
  private subscription: Subscription | null = null;
  private announcePending = false;
  private started = false;
  private readonly subscriberGauge: Gauge;
  private readonly dropped: Counter<"reason">;

  constructor(
    private readonly deps: Pick<ServiceDeps, "db" | "kv" | "clock" | "logger" | "metrics">,
    private readonly keepAliveMs = EVENTS_KEEPALIVE_S * 1000,
    /** A safety net under the announcements (one lost while Redis reconnects, say): the log is read at least this often. */
    private readonly pollMs = 1_000,
  ) {
    this.subscriberGauge = new Gauge({ name: "muster_event_streams", help: "GET /v1/events streams open on this process", registers: [deps.metrics.registry] });
    this.dropped = new Counter({
      name: "muster_event_streams_ended_total",
      help: "Event streams this process ended: too_slow (the client fell more than 4 MiB behind), key_revoked, shutdown",
      labelNames: ["reason"],
      registers: [deps.metrics.registry],
    });
  }

  async start(): Promise<void> {
    this.cursor = await readyHead(this.deps.db);
    this.started = true;
    this.recentFloor = this.cursor;
    this.subscription = await this.deps.kv.subscribe(
      EVENTS_CHANNEL,
      () => this.wake(),
      // Back from a break in delivery: announcements may have been lost meanwhile.
      (reliable) => reliable && this.wake(),
    );
    this.timers.push(setInterval(() => this.wake(), this.pollMs));
    this.timers.push(setInterval(() => void this.keepAlive(), this.keepAliveMs));
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    if (this.heldTimer) clearTimeout(this.heldTimer);
    await this.subscription?.close();
    this.subscription = null;
    this.started = false;
    for (const subscriber of this.subscribers()) subscriber.close("the control plane is shutting down; reconnect with Last-Event-ID", "shutdown");
    await this.reading;
  }

  /** A transaction that wrote events committed in this process: wake every process's hub (this one at once). */
  announce(): void {
    this.wake();
    if (this.announcePending) return;
    // Commits in the same tick share one announcement.
    this.announcePending = true;
    queueMicrotask(() => {
      this.announcePending = false;
      this.deps.kv.publish(EVENTS_CHANNEL, "").catch((error: unknown) => {
        this.deps.logger.warn({ err: error }, "announcing new events failed; other processes read them within a second anyway");
      });
    });
  }

  /**
   * Opens a stream for a filter: from `after` (checked resumable, else 410),
   * or from now. Resolves once the stream has caught up and joined the tail.
   */
  async open(filter: EventFilter, keyId: string, after: bigint | null): Promise<Subscriber> {
    if (!this.started) throw new DomainError("unavailable", "the event stream is not running on this control plane; retry shortly", 1);
    const onEnd = (ended: Subscriber, reason: EndReason | undefined) => this.remove(ended, reason);
    let subscriber: Subscriber;
    if (after !== null) {
      await checkResumable(this.deps.db, after);
      subscriber = new Subscriber(filter, keyId, after, onEnd);
    } else {
      const start = await streamStart(this.deps.db);
      subscriber = new Subscriber(filter, keyId, start.position, onEnd, start.committedBefore);
    }
    try {
      await this.catchUp(subscriber);
    } catch (error) {
      subscriber.close("catching up failed; reconnect with Last-Event-ID");
      throw error;
    }
    return subscriber;
  }

  get size(): number {
    let count = this.admins.size;
    for (const team of this.byTeam.values()) count += team.size;
    return count;
  }

  /**
   * Sends the subscriber what lies between its cursor and the tail, then
   * joins it to the tail with no await in between, so no event the hub
   * dispatches can fall between the two: the hub offers it every later
   * event, and it skips those it already had.
   */
  private async catchUp(subscriber: Subscriber): Promise<void> {
    for (;;) {
      if (!subscriber.isOpen) return;
      if (subscriber.cursor >= this.recentFloor) {
        for (const { event, frame } of this.recent) subscriber.offer(event, frame);
        return this.add(subscriber);
      }
      const { events, horizon } = await readReadyEvents(this.deps.db, subscriber.cursor, READ_BATCH, subscriber.filter);
      for (const event of events) subscriber.offer(event, eventFrame(event));
      if (events.length === READ_BATCH || !subscriber.isOpen) continue;
      // Every event below the horizon that the subscriber may see has been sent.
      if (subscriber.cursor < horizon - 1n) subscriber.cursor = horizon - 1n;
      if (this.cursor <= subscriber.cursor) return this.add(subscriber);
    }
  }

  private add(subscriber: Subscriber): void {
    const teamId = subscriber.filter.teamId;
    if (teamId === null) this.admins.add(subscriber);
    else {
      let team = this.byTeam.get(teamId);
      if (!team) this.byTeam.set(teamId, (team = new Set()));
      team.add(subscriber);
    }
    this.subscriberGauge.inc();
  }

  private remove(subscriber: Subscriber, reason: EndReason | undefined): void {
    if (reason) this.dropped.inc({ reason });
    const teamId = subscriber.filter.teamId;
    const set = teamId === null ? this.admins : this.byTeam.get(teamId);
    if (!set?.delete(subscriber)) return;
    if (teamId !== null && set.size === 0) this.byTeam.delete(teamId);
    this.subscriberGauge.dec();
  }

  private *subscribers(): Iterable<Subscriber> {
    yield* this.admins;
    for (const team of this.byTeam.values()) yield* team;
  }

  private wake(): void {
    if (!this.started) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.readLoop().finally(() => (this.reading = null));
  }

  private async readLoop(): Promise<void> {
    do {
      this.readAgain = false;
      let read;
      try {
        read = await readReadyEvents(this.deps.db, this.cursor, READ_BATCH);
      } catch (error) {
        this.deps.logger.warn({ err: error }, "reading the event log failed; retrying within a second");
        return;
      }
      this.dispatch(read.events);
      if (read.events.length === READ_BATCH) this.readAgain = true;
      else if (read.heldBack) this.retryHeld();
      else this.heldRetryMs = HELD_RETRY_MS;
    } while (this.readAgain);
  }

  /** Events wait behind an older transaction that has not ended; it may write none, so no announcement may come. */
  private retryHeld(): void {
    if (this.heldTimer) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      this.wake();
    }, this.heldRetryMs);
    this.heldRetryMs = Math.min(HELD_RETRY_CAP_MS, this.heldRetryMs * 2);
  }

  private dispatch(events: StoredEvent[]): void {
    for (const event of events) {
      const frame = eventFrame(event);
      this.cursor = event.position;
      this.remember(event, frame);
      for (const subscriber of this.admins) subscriber.offer(event, frame);
      if (event.teamId !== null) for (const subscriber of this.byTeam.get(event.teamId) ?? []) subscriber.offer(event, frame);
    }
  }

  private remember(event: StoredEvent, frame: Uint8Array): void {
    this.recent.push({ event, frame });
    if (this.recent.length > RECENT_MAX * 2) {
      const dropped = this.recent.length - RECENT_MAX;
      this.recentFloor = this.recent[dropped - 1]!.event.position;
      this.recent = this.recent.slice(dropped);
    }
  }

  /**
   * The keep-alive comment to every stream, and the check that each stream's
   * API key is still live: a revoked or expired key, or one whose user left
   * the team, ends its streams here, within one keep-alive interval.
   */
  private async keepAlive(): Promise<void> {
    const open = [...this.subscribers()];
    for (const subscriber of open) subscriber.keepAlive();
    if (open.length === 0) return;
    let live: Set<string>;
    try {
      live = await liveApiKeyIds(this.deps, [...new Set(open.map((subscriber) => subscriber.keyId))]);
    } catch (error) {
      return this.deps.logger.warn({ err: error }, "checking event streams' API keys failed; checking again at the next keep-alive");
    }
    for (const subscriber of open) {
      if (!live.has(subscriber.keyId)) subscriber.close("the API key is no longer live", "key_revoked");
    }
  }
}
