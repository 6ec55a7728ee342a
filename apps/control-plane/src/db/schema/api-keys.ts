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
  },
  (t) => [index("api_keys_user_idx").on(t.userId)],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
