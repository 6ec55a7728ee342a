import { createHash } from "node:crypto";
import { and, count, isNotNull, isNull } from "drizzle-orm";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { hosts } from "../db/schema/index.js";

const RECOUNT_EVERY_MS = 10_000;
/** A paced host's interval is up to this share longer than the fleet's, fixed per host, so hosts paced together do not beat in step. */
const JITTER_SHARE = 0.1;

/** Waits shorter than this are not worth a refusal. */
const MIN_WAIT_S = 1;

/** A number in [0, 1) fixed for the host. */
function hostFraction(hostId: string): number {
  return createHash("sha256").update(hostId).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * Server-driven pacing. With MUSTER_MAX_HEARTBEATS_PER_S set, the interval
 * handed to agents grows with the fleet so that all of it together stays under
 * the cap, each host's up to JITTER_SHARE longer, and the offline window
 * stretches with the longest of them, so paced hosts are not marked offline;
 * unstretched, both are exactly as configured. Agents
 * learn a new interval at their next registration or refresh. The fleet is
 * recounted in the background, so no request waits for the count.
 *
 * Paced, it also spreads first beats. To a control plane that just started,
 * every host's next beat is a first beat (a token to verify, credentials to
 * read, a liveness entry to write), many times a steady beat's cost, and a
 * fleet whose agents retried through the downtime arrives at once. First
 * beats beyond the cap per second are told to come back later, at a random
 * point of the time the whole fleet needs at that rate (drawn anew at every
 * refusal, so hosts that collided once do not collide again).
 */
export class Pacing {
  private fleetSize = 0;
  private timer: NodeJS.Timeout | null = null;
  private firstBeatTokens: number;
  private firstBeatsRefilledAtMs = 0;

  constructor(
    private readonly db: Db,
    private readonly config: Pick<Config, "heartbeatIntervalS" | "offlineAfterS" | "maxHeartbeatsPerS">,
    private readonly logger: Logger,
  ) {
    this.firstBeatTokens = config.maxHeartbeatsPerS ?? 0;
  }

  /** Whether a first beat may go ahead now: always unpaced, else while the cap per second has room. */
  takeFirstBeat(nowMs: number): boolean {
    const cap = this.config.maxHeartbeatsPerS;
    if (cap === null) return true;
    const refill = ((nowMs - this.firstBeatsRefilledAtMs) / 1000) * cap;
    this.firstBeatTokens = Math.min(cap, this.firstBeatTokens + Math.max(0, refill));
    this.firstBeatsRefilledAtMs = nowMs;
    if (this.firstBeatTokens < 1) return false;
    this.firstBeatTokens -= 1;
    return true;
  }

  /**
   * How long a first beat that found no room should wait: a random point
   * within the time the fleet needs at the cap, but never more than
   * `latestS`, the time it has before it would be marked offline. 0 (go ahead
   * anyway) when that leaves less than a second.
   */
  firstBeatWaitS(latestS: number): number {
    const cap = this.config.maxHeartbeatsPerS ?? Infinity;
    const room = Math.min(Math.ceil(this.fleetSize / cap), Math.floor(latestS));
    if (room < MIN_WAIT_S) return 0;
    return MIN_WAIT_S + Math.floor(Math.random() * (room - MIN_WAIT_S + 1));
  }

  /** Seconds between one host's beats. */
  intervalS(hostId: string): number {
    return this.jitteredIntervalS(hostFraction(hostId));
  }

  /** Silence after which a host turns offline. */
  offlineAfterS(): number {
    const longest = this.jitteredIntervalS(1);
    return Math.ceil((this.config.offlineAfterS * longest) / this.config.heartbeatIntervalS);
  }

  /** The fleet's interval plus `fraction` of the jitter share when paced; exactly as configured otherwise. */
  private jitteredIntervalS(fraction: number): number {
    const fleetInterval = this.fleetIntervalS();
    if (fleetInterval === this.config.heartbeatIntervalS) return fleetInterval;
    return fleetInterval + Math.floor(fleetInterval * JITTER_SHARE * fraction);
  }

  /** The interval that keeps the whole fleet under the cap (the configured one when that does). */
  private fleetIntervalS(): number {
    const cap = this.config.maxHeartbeatsPerS;
    if (cap === null) return this.config.heartbeatIntervalS;
    return Math.max(this.config.heartbeatIntervalS, Math.ceil(this.fleetSize / cap));
  }

  /** Counts the registered, live hosts. */
  async recount(): Promise<void> {
    if (this.config.maxHeartbeatsPerS === null) return;
    const [row] = await this.db
      .select({ n: count() })
      .from(hosts)
      .where(and(isNotNull(hosts.registeredAt), isNull(hosts.deletedAt)));
    this.fleetSize = row?.n ?? 0;
  }

  async start(): Promise<void> {
    await this.recount();
    this.timer = setInterval(() => {
      this.recount().catch((error: unknown) => this.logger.warn({ err: error }, "fleet recount failed; keeping the last count"));
    }, RECOUNT_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
