import { index, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, id, optionalTime } from "./columns.js";

export const auditLog = pgTable(
  "audit_log",
  {
    id: id(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    teamId: text("team_id"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index("audit_log_created_idx").on(t.createdAt, t.id),
    index("audit_log_target_idx").on(t.targetId),
    index("audit_log_team_idx").on(t.teamId, t.createdAt),
  ],
);

export const signingKeys = pgTable("signing_keys", {
  kid: text("kid").primaryKey(),
  algorithm: text("algorithm").notNull(),
  secret: text("secret").notNull(),
  createdAt: createdAt(),
});

/** Time-bound leases that elect one process for work that must happen once (the offline sweeper). */
export const leases = pgTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: optionalTime("expires_at").notNull(),
});

export type AuditRow = typeof auditLog.$inferSelect;
