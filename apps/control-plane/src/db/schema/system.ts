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

/** Host-JWT signing keys: the newest signs, earlier ones verify the tokens they signed until `retires_at`. */
export const signingKeys = pgTable("signing_keys", {
  kid: text("kid").primaryKey(),
  algorithm: text("algorithm").notNull(),
  /** How builds before sealing kept the secret: in plain text. Sealed and cleared at the first start with a key-encryption key. */
  secret: text("secret"),
  /** The secret sealed (AES-256-GCM) under the key-encryption key `kek_id`, which the database never holds. */
  sealedSecret: text("sealed_secret"),
  kekId: text("kek_id"),
  createdAt: createdAt(),
  /** Null for the key that signs; for an earlier one, when it stops verifying (its last tokens have expired by then). */
  retiresAt: optionalTime("retires_at"),
});

export type SigningKeyRow = typeof signingKeys.$inferSelect;

/** Time-bound leases that elect one process for work that must happen once (the offline sweeper). */
export const leases = pgTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: optionalTime("expires_at").notNull(),
});

export type AuditRow = typeof auditLog.$inferSelect;
