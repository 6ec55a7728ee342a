import { and, count, isNotNull, isNull } from "drizzle-orm";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { hosts } from "../db/schema/index.js";

const RECOUNT_EVERY_MS = 10_000;

/**
 * Server-driven pacing. With MUSTER_MAX_HEARTBEATS_PER_S set, the interval
 * handed to agents grows with the fleet so that all of it together stays under
 * the cap, and the offline window stretches by the same factor, so paced hosts
 * are not marked offline; unstretched, both are exactly as configured. Agents
 * learn a new interval at their next registration or refresh. The fleet is
 * recounted in the background, so no request waits for the count.
 */
export class Pacing {
  private fleetSize = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly config: Pick<Config, "heartbeatIntervalS" | "offlineAfterS" | "maxHeartbeatsPerS">,
    private readonly logger: Logger,
  ) {}

  /** Seconds between one host's beats. */
  intervalS(): number {
    const cap = this.config.maxHeartbeatsPerS;
    if (cap === null) return this.config.heartbeatIntervalS;
    return Math.max(this.config.heartbeatIntervalS, Math.ceil(this.fleetSize / cap));
  }

  /** Silence after which a host turns offline. */
  offlineAfterS(): number {
    return Math.ceil((this.config.offlineAfterS * this.intervalS()) / this.config.heartbeatIntervalS);
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
