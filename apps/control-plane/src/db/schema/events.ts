import { bigint, index, integer, json, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import { createdAt, id, optionalTime } from "./columns.js";
import { teams, users } from "./users.js";

/**
 * The event log. `position` orders it: the writing transaction's ID times
 * 65,536 plus the event's rank in that transaction (see services/event-log.ts,
 * which explains why a sequence would not do).
 */
export const events = pgTable(
  "events",
  {
    position: bigint("position", { mode: "bigint" }).primaryKey(),
    type: text("type").notNull(),
    teamId: text("team_id"),
    hostId: text("host_id").notNull(),
    /** The host's tags when the event happened (before and after, for host.tags_changed): what `?tag=` matches. */
    tags: jsonb("tags").$type<string[]>().notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true, mode: "date" }).notNull(),
    /** The resource as the API returned it then; json, not jsonb, so the text keeps its field order. */
    data: json("data").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("events_occurred_idx").on(t.occurredAt)],
);

/** Named positions in the event log: how far it was pruned, how far webhooks were fanned out. */
export const eventMarks = pgTable("event_marks", {
  name: text("name").primaryKey(),
  position: bigint("position", { mode: "bigint" }).notNull(),
});

export const webhooks = pgTable(
  "webhooks",
  {
    id: id(),
    /** Null: an admin's webhook, for every team's events. */
    teamId: text("team_id").references(() => teams.id),
    url: text("url").notNull(),
    types: jsonb("types").$type<string[]>().notNull(),
    /** The signing secret (HMAC key), sealed under the key-encryption key (kekId) like every key: never returned after creation. */
    sealedSecret: text("sealed_secret").notNull(),
    kekId: text("kek_id").notNull(),
    secretStart: text("secret_start").notNull(),
    /** Events after this position are delivered; set by the fan-out when it first sees the webhook (null until then). */
    startAfter: bigint("start_after", { mode: "bigint" }),
    createdBy: text("created_by").notNull().references(() => users.id),
    createdAt: createdAt(),
    deletedAt: optionalTime("deleted_at"),
  },
  (t) => [index("webhooks_team_idx").on(t.teamId, t.createdAt)],
);

/** One event to one webhook: pending until a 2xx answer, or failed once retries ran out. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: id(),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    eventPosition: bigint("event_position", { mode: "bigint" }).notNull(),
    eventType: text("event_type").notNull(),
    hostId: text("host_id").notNull(),
    status: text("status", { enum: ["pending", "succeeded", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: optionalTime("next_attempt_at"),
    /** A process sending this delivery holds it until then (a lease, so a process that died mid-send is not waited on). */
    lockedUntil: optionalTime("locked_until"),
    createdAt: createdAt(),
    completedAt: optionalTime("completed_at"),
  },
  (t) => [
    // The sender's scan: pending deliveries by due time; and a host's earlier pending deliveries, which go first.
    index("webhook_deliveries_due_idx").on(t.status, t.nextAttemptAt),
    index("webhook_deliveries_order_idx").on(t.webhookId, t.hostId, t.eventPosition),
    index("webhook_deliveries_list_idx").on(t.webhookId, t.createdAt, t.id),
  ],
);

export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    deliveryId: text("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
    statusCode: integer("status_code"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [primaryKey({ columns: [t.deliveryId, t.attempt] })],
);

export type EventRow = typeof events.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
