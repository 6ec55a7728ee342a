import { and, lt, ne } from "drizzle-orm";
import { webhookDeliveries } from "../db/schema/index.js";
import type { ServiceDeps } from "../services/context.js";
import { pruneEvents } from "../services/events.js";
import { holdLease, releaseLease } from "../services/leases.js";

const LEASE = "event-pruner";
const LEASE_TTL_MS = 5 * 60_000;
const EVERY_MS = 60_000;
const BATCH = 10_000;

/**
 * Deletes events (and finished webhook deliveries) older than
 * MUSTER_EVENTS_RETENTION_S, once a minute, in the
 * one process that holds the pruner's lease. Streams that ask to resume
 * before what was pruned get 410 gone (see checkResumable).
 */
export class EventPruner {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly deps: Pick<ServiceDeps, "db" | "clock" | "config" | "logger">,
    private readonly instanceId: string,
  ) {}

  /** One pass: prunes everything due when this process holds the lease; returns how many events went. */
  async pruneOnce(): Promise<number> {
    const now = this.deps.clock.now();
    if (!(await holdLease(this.deps.db, LEASE, this.instanceId, now, LEASE_TTL_MS))) return 0;
    const cutoff = new Date(now.getTime() - this.deps.config.eventsRetentionS * 1000);
    // Finished webhook deliveries (and their attempts) go with the events they carried.
    await this.deps.db.delete(webhookDeliveries).where(and(ne(webhookDeliveries.status, "pending"), lt(webhookDeliveries.createdAt, cutoff)));
    let pruned = 0;
    for (;;) {
      const batch = await pruneEvents(this.deps.db, cutoff, BATCH);
      pruned += batch;
      if (batch < BATCH) return pruned;
    }
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.pruneOnce()
        .catch((error: unknown) => this.deps.logger.warn({ err: error }, "pruning the event log failed; retrying in a minute"))
        .finally(() => (this.running = null));
    }, EVERY_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    await releaseLease(this.deps.db, LEASE, this.instanceId).catch(() => {});
  }
}
