import { createHmac } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { matchesEventTypes, WEBHOOK_SIGNATURE_HEADER } from "@muster/contract";
import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { eventMarks, webhookAttempts, webhookDeliveries, webhooks, type WebhookDeliveryRow } from "../db/schema/index.js";
import { rowsOf } from "../db/rows.js";
import { newId } from "../lib/ids.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "../services/context.js";
import { readReadyEvents, readyHead } from "../services/events.js";
import { holdLease, releaseLease } from "../services/leases.js";
import { AddressRefused, type AddressPolicy, type CheckedTarget } from "../net/address-policy.js";
import { sealedContext } from "../secrets/sealer.js";

const FANOUT_LEASE = "webhook-fanout";
const LEASE_TTL_MS = 10_000;
const FANOUT_MARK = "webhooks";
const FANOUT_BATCH = 500;
/** Deliveries one process sends at once. */
const SEND_BATCH = 20;
/** A receiver has this long to answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** A claimed delivery is this process's for this long: past the timeout, so a process that died mid-send is not waited on for ever. */
const CLAIM_MS = 6 * WEBHOOK_TIMEOUT_MS;
/** Retries stop this long after the delivery was created; it is then failed, and the host's next event goes. */
export const WEBHOOK_RETRY_FOR_MS = 24 * 3600_000;
const RETRY_CAP_MS = 3600_000;
const LOOP_MS = 1_000;
const RESPONSE_BYTES_READ = 4096;

type Deps = Pick<ServiceDeps, "db" | "clock" | "config" | "logger" | "random" | "addresses" | "sealer">;

/**
 * Webhooks, from the event log to the receivers. One process (the lease
 * holder) fans events out into deliveries, one per matching webhook, and
 * records how far it got in the same transaction. Every process sends due
 * deliveries: each is claimed with FOR UPDATE SKIP LOCKED and a time-bound
 * claim, so one process sends a given delivery at a time, and a host's
 * deliveries to a webhook go one after another in event order (a delivery
 * waits while an earlier one of its host is pending). A receiver that does
 * not answer 2xx within 10 s is tried again with exponential backoff for
 * 24 hours; every attempt is recorded. At least once: a receiver may see an
 * event again (after a timeout it did process), so it dedupes by event ID.
 */
export class WebhookDeliverer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private again = false;

  constructor(
    private readonly deps: Deps,
    private readonly instanceId: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.wake(), LOOP_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    await releaseLease(this.deps.db, FANOUT_LEASE, this.instanceId).catch(() => {});
  }

  /** Events were committed (or a tick passed): fan out and send what is due. Does nothing until started. */
  wake(): void {
    if (this.timer === null) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.fanOutOnce();
        await this.sendDue();
      } while (this.again);
    })()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, "webhook delivery pass failed; retrying within a second"))
      .finally(() => (this.running = null));
  }

  /** Turns the events after the fan-out mark into deliveries; returns how many it made. Only the lease holder does it. */
  async fanOutOnce(): Promise<number> {
    const { db, clock } = this.deps;
    if (!(await holdLease(db, FANOUT_LEASE, this.instanceId, clock.now(), LEASE_TTL_MS))) return 0;
    const [mark] = await db.select().from(eventMarks).where(eq(eventMarks.name, FANOUT_MARK));
    // No mark: no webhook was ever created (the first sets it, see startFanOut).
    if (!mark) return 0;
    const from = mark.position;
    // A webhook starts with the events after the mark when the fan-out first sees it, so none falls between its creation and then.
    await db.update(webhooks).set({ startAfter: from }).where(and(isNull(webhooks.startAfter), isNull(webhooks.deletedAt)));
    const live = await db.select().from(webhooks).where(isNull(webhooks.deletedAt));
    const { events } = await readReadyEvents(db, from, FANOUT_BATCH);
    if (events.length === 0) return 0;
    const now = clock.now();
    const deliveries = events.flatMap((event) =>
      live
        .filter((hook) => hook.startAfter !== null && event.position > hook.startAfter && (hook.teamId === null || hook.teamId === event.teamId) && matchesEventTypes(event.type, hook.types))
        .map((hook) => ({
          id: newId(this.deps.random, "webhookDelivery"),
          webhookId: hook.id,
          eventPosition: event.position,
          eventType: event.type,
          hostId: event.hostId,
          status: "pending" as const,
          nextAttemptAt: now,
          createdAt: now,
        })),
    );
    const last = events.at(-1)!.position;
    await withTransaction(db, async (tx) => {
      // Compare-and-set: a lease holder that lost its lease mid-pass cannot fan the same events out twice.
      const moved = await tx
        .update(eventMarks)
        .set({ position: last })
        .where(and(eq(eventMarks.name, FANOUT_MARK), eq(eventMarks.position, from)))
        .returning();
      if (moved.length === 0) return;
      for (let i = 0; i < deliveries.length; i += 500) await tx.insert(webhookDeliveries).values(deliveries.slice(i, i + 500));
    });
    if (events.length === FANOUT_BATCH) this.again = true;
    return deliveries.length;
  }

  /** Sends the deliveries that are due and next in their host's order; returns how many it sent. */
  async sendDue(): Promise<number> {
    const claimed = await this.claim();
    await Promise.all(claimed.map((delivery) => this.send(delivery)));
    if (claimed.length === SEND_BATCH) this.again = true;
    return claimed.length;
  }

  private async claim(): Promise<WebhookDeliveryRow[]> {
    const now = this.deps.clock.now();
    return withTransaction(this.deps.db, async (tx) => {
      const due = await rowsOf<{ id: string }>(
        tx,
        sql`
          select d.id from webhook_deliveries d
          where d.status = 'pending' and d.next_attempt_at <= ${now.toISOString()}::timestamptz
            and (d.locked_until is null or d.locked_until <= ${now.toISOString()}::timestamptz)
            and not exists (
              select 1 from webhook_deliveries p
              where p.webhook_id = d.webhook_id and p.host_id = d.host_id and p.status = 'pending' and p.event_position < d.event_position
            )
          order by d.next_attempt_at, d.event_position
          limit ${SEND_BATCH}
          for update of d skip locked`,
      );
      if (due.length === 0) return [];
      return tx
        .update(webhookDeliveries)
        .set({ lockedUntil: new Date(now.getTime() + CLAIM_MS), attempts: sql`${webhookDeliveries.attempts} + 1` })
        .where(inArray(webhookDeliveries.id, due.map((row) => row.id)))
        .returning();
    });
  }

  private async send(delivery: WebhookDeliveryRow): Promise<void> {
    const { db, clock } = this.deps;
    const [hook] = await db.select().from(webhooks).where(eq(webhooks.id, delivery.webhookId));
    if (!hook) return;
    const { events } = await readReadyEvents(db, delivery.eventPosition - 1n, 1);
    const event = events[0]?.position === delivery.eventPosition ? events[0] : null;
    const started = clock.now();
    const begun = performance.now();
    let outcome: { statusCode: number | null; error: string | null };
    if (!event) outcome = { statusCode: null, error: "the event was pruned before it could be delivered (MUSTER_EVENTS_RETENTION_S)" };
    else {
      const timestamp = String(Math.floor(started.getTime() / 1000));
      const secret = this.deps.sealer.open({ kekId: hook.kekId, sealed: hook.sealedSecret }, sealedContext.webhookSecret(hook.id));
      const signature = createHmac("sha256", secret).update(`${timestamp}.${event.json}`).digest("hex");
      outcome = await post(this.deps.addresses, hook.url, event.json, {
        "content-type": "application/json",
        "user-agent": "Muster-Webhooks/1",
        [WEBHOOK_SIGNATURE_HEADER]: `t=${timestamp},v1=${signature}`,
        "muster-event-id": String(event.position),
        "muster-event-type": event.type,
        "muster-delivery-id": delivery.id,
      });
    }
    const durationMs = Math.round(performance.now() - begun);
    this.deps.logger.debug({ delivery_id: delivery.id, webhook_id: hook.id, attempt: delivery.attempts, ...outcome, duration_ms: durationMs }, "webhook delivery attempted");
    const ok = outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
    const now = clock.now();
    const givingUp = !ok && (!event || now.getTime() - delivery.createdAt.getTime() >= WEBHOOK_RETRY_FOR_MS);
    const retryMs = Math.min(RETRY_CAP_MS, this.deps.config.webhookRetryBaseMs * 2 ** (delivery.attempts - 1));
    await withTransaction(db, async (tx) => {
      await tx.insert(webhookAttempts).values({
        deliveryId: delivery.id,
        attempt: delivery.attempts,
        at: started,
        statusCode: outcome.statusCode,
        error: outcome.error,
        durationMs,
      });
      await tx
        .update(webhookDeliveries)
        .set(
          ok || givingUp
            ? { status: ok ? "succeeded" : "failed", completedAt: now, lockedUntil: null, nextAttemptAt: null }
            : { nextAttemptAt: new Date(now.getTime() + retryMs), lockedUntil: null },
        )
        .where(eq(webhookDeliveries.id, delivery.id));
    });
    if (ok || givingUp) this.again = true;
  }
}

/** The fan-out starts at the log's head when the first webhook is created: there is nothing older for a webhook to get. */
export async function startFanOut(db: DbOrTx): Promise<void> {
  await db.insert(eventMarks).values({ name: FANOUT_MARK, position: await readyHead(db) }).onConflictDoNothing();
}

/**
 * One POST; the outcome is the status the receiver answered, or why there was
 * none. The URL's name is resolved and every address checked by the address
 * policy (the probe's: no loopback, link-local or metadata unless allowed),
 * and the request goes to the checked address itself, so a name that
 * resolves elsewhere a moment later changes nothing. Redirects are not followed.
 */
async function post(addresses: AddressPolicy, url: string, body: string, headers: Record<string, string>): Promise<{ statusCode: number | null; error: string | null }> {
  const target = new URL(url);
  const https = target.protocol === "https:";
  let checked: CheckedTarget;
  try {
    checked = await addresses.resolve({ host: target.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(target.port || (https ? 443 : 80)) });
  } catch (error) {
    return { statusCode: null, error: error instanceof AddressRefused ? `refused: ${error.message}` : (error as Error).message };
  }
  return new Promise((resolve) => {
    const request = https ? httpsRequest : httpRequest;
    const options = {
      method: "POST",
      host: checked.ip,
      family: checked.family,
      port: checked.port,
      path: `${target.pathname}${target.search}`,
      // The URL's name for the Host header and the TLS certificate check, the checked address for the connection.
      headers: { ...headers, host: target.host, "content-length": String(Buffer.byteLength(body)) },
      ...(https ? { servername: target.hostname.replace(/^\[(.*)\]$/, "$1") } : {}),
      timeout: WEBHOOK_TIMEOUT_MS,
      agent: false,
    };
    const req = request(options, (res: IncomingMessage) => {
      let read = 0;
      res.on("data", (chunk: Buffer) => {
        read += chunk.length;
        if (read > RESPONSE_BYTES_READ) res.destroy();
      });
      res.on("close", () => resolve({ statusCode: res.statusCode ?? null, error: res.statusCode && res.statusCode < 300 ? null : `the receiver answered ${res.statusCode}` }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ statusCode: null, error: error.code ? `${error.code}: ${error.message}` : error.message }));
    req.end(body);
  });
}
