import type { CreateUserBody, User } from "@muster/contract";
import { PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { asc, eq } from "drizzle-orm";
import { users, type UserRow } from "../db/schema/index.js";
import { conflict } from "../errors.js";
import { newId } from "../lib/ids.js";
import { requireAdmin, type Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

export function userView(row: UserRow): User {
  return { id: row.id, email: row.email, name: row.name, is_admin: row.isAdmin, created_at: row.createdAt.toISOString() };
}

export async function createUser(deps: ServiceDeps, actor: Actor, body: CreateUserBody) {
  requireAdmin(actor);
  const email = body.email.toLowerCase();
  return withTransaction(deps.db, async (tx) => {
    const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.email, email));
    if (taken) throw conflict(`a user with email ${email} already exists`);
    const [row] = await tx
      .insert(users)
      .values({ id: newId(deps.random, "user"), email, name: body.name ?? null, isAdmin: body.is_admin ?? false, createdAt: deps.clock.now() })
      .onConflictDoNothing()
      .returning();
    if (!row) throw conflict(`a user with email ${email} already exists`);
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "user.created", targetType: "user", targetId: row.id, teamId: null, metadata: { is_admin: row.isAdmin } },
    ]);
    return { user: userView(row) };
  });
}

export async function listUsers(deps: ServiceDeps, actor: Actor, query: { limit?: number; cursor?: string }) {
  requireAdmin(actor);
  const cursor = decodeCursor(query.cursor);
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const rows = await deps.db
    .select()
    .from(users)
    .where(pastCursor(cursor, users.createdAt, users.id, "asc"))
    .orderBy(asc(users.createdAt), asc(users.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(userView), next_cursor };
}
