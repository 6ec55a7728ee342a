import { index, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
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
    // Delivery looks up a host's unfinished commands; expiry scans unfinished ones by deadline.
    index("host_commands_host_status_idx").on(t.hostId, t.status, t.createdAt),
    index("host_commands_status_expires_idx").on(t.status, t.expiresAt),
  ],
);

export type HostCommandRow = typeof hostCommands.$inferSelect;
