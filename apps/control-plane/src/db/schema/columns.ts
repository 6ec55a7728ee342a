import { text, timestamp } from "drizzle-orm/pg-core";

export const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull();
export const optionalTime = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
export const id = () => text("id").primaryKey();
