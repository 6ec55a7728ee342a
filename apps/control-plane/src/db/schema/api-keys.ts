import { index, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, id, optionalTime } from "./columns.js";
import { teams, users } from "./users.js";

export const apiKeys = pgTable(
  "api_keys",
  {
    id: id(),
    name: text("name").notNull(),
    userId: text("user_id").notNull().references(() => users.id),
    teamId: text("team_id").references(() => teams.id),
    keyHash: text("key_hash").notNull().unique(),
    start: text("start").notNull(),
    createdAt: createdAt(),
    lastUsedAt: optionalTime("last_used_at"),
    expiresAt: optionalTime("expires_at"),
    revokedAt: optionalTime("revoked_at"),
    /** The key that created this one (null: the bootstrap key); revoking it revokes this one, and this one never outlives it. */
    parentKeyId: text("parent_key_id"),
  },
  (t) => [index("api_keys_user_idx").on(t.userId), index("api_keys_parent_idx").on(t.parentKeyId)],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
