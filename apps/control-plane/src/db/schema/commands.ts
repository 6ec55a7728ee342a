import { index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import type { CommandPayload } from "@muster/contract";
import { createdAt, id, optionalTime } from "./columns.js";
import { hosts } from "./hosts.js";
import { users } from "./users.js";

/** Commands sent to hosts' agents; the row is the command's whole life, queued to its end. */
export const hostCommands = pgTable(
  "host_commands",
  {
    id: id(),
    hostId: text("host_id").notNull().references(() => hosts.id),
    type: text("type").notNull(),
    payload: jsonb("payload").$type<CommandPayload>(),
    status: text("status", { enum: ["queued", "delivered", "succeeded", "failed", "expired"] }).notNull(),
    /**
     * Who ended it: the agent's result, or the deadline (`expired`, or `failed`
     * with "result not received"). A deadline's ending gives way to a result
     * that arrives later; the agent's first result is final.
     */
    endedBy: text("ended_by", { enum: ["agent", "deadline"] }),
    timeoutS: integer("timeout_s").notNull(),
    result: jsonb("result"),
    error: text("error"),
    createdBy: text("created_by").notNull().references(() => users.id),
    createdAt: createdAt(),
    deliveredAt: optionalTime("delivered_at"),
    completedAt: optionalTime("completed_at"),
    expiresAt: optionalTime("expires_at").notNull(),
  },
  (t) => [
    // Delivery and filtered lists look up a host's commands by state; expiry scans unfinished ones by deadline;
    // the unfiltered list pages through a host's commands by creation.
    index("host_commands_host_status_idx").on(t.hostId, t.status, t.createdAt),
    index("host_commands_status_expires_idx").on(t.status, t.expiresAt),
    index("host_commands_host_created_idx").on(t.hostId, t.createdAt, t.id),
  ],
);

export type HostCommandRow = typeof hostCommands.$inferSelect;

/**
 * Answers kept for `Idempotency-Key`: per API key and key, the request it came
 * with (as jsonb, so a retry that orders its fields differently is still the
 * same request) and the answer given, until `expires_at`. Written in the
 * transaction that does the request's work, so a key is never recorded for
 * work that did not happen, nor work done without its key.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    apiKeyId: text("api_key_id").notNull(),
    key: text("key").notNull(),
    request: jsonb("request").notNull(),
    status: integer("status").notNull(),
    response: jsonb("response"),
    createdAt: createdAt(),
    expiresAt: optionalTime("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.apiKeyId, t.key] }), index("idempotency_keys_expires_idx").on(t.expiresAt)],
);
