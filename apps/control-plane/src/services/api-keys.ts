import type { ApiKey, CreateApiKeyBody } from "@muster/contract";
import { PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { and, asc, eq, gt, inArray, isNull, or, type SQL } from "drizzle-orm";
import { apiKeys, teamMembers, teams, users, type ApiKeyRow } from "../db/schema/index.js";
import { forbidden, invalid, notFound, unauthorized } from "../errors.js";
import { newId } from "../lib/ids.js";
import { hashSecret, keyStart, newApiKey } from "../lib/secrets.js";
import type { Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "./context.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

/** last_used_at is written at most this often per key, so reads do not each cost a write. */
const LAST_USED_PRECISION_MS = 60_000;

export function apiKeyView(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    user_id: row.userId,
    team_id: row.teamId,
    start: row.start,
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
  };
}

const BAD_KEY = "API key is missing, malformed, expired or revoked; send a live key as 'Authorization: Bearer <key>'";

/** Keys with their user's admin flag and role in the key's team; a key is live when unrevoked, unexpired and the role is known. */
function keysWithRoles(db: DbOrTx, now: Date, which: SQL) {
  return db
    .select({ key: apiKeys, isAdmin: users.isAdmin, role: teamMembers.role })
    .from(apiKeys)
    .innerJoin(users, eq(users.id, apiKeys.userId))
    .leftJoin(teamMembers, and(eq(teamMembers.teamId, apiKeys.teamId), eq(teamMembers.userId, apiKeys.userId)))
    .where(and(which, isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))));
}

/** Resolves a bearer key to its actor. Every failure reads the same, whatever the cause. */
export async function authenticateApiKey(deps: ServiceDeps, key: string): Promise<Actor> {
  const now = deps.clock.now();
  const [found] = await keysWithRoles(deps.db, now, eq(apiKeys.keyHash, hashSecret(key)));
  if (!found) throw unauthorized(BAD_KEY);
  const role = found.isAdmin ? "admin" : found.role;
  if (role === null) throw unauthorized(BAD_KEY);
  if (!found.key.lastUsedAt || now.getTime() - found.key.lastUsedAt.getTime() >= LAST_USED_PRECISION_MS) {
    await deps.db.update(apiKeys).set({ lastUsedAt: now }).where(eq(apiKeys.id, found.key.id));
  }
  return { userId: found.key.userId, keyId: found.key.id, isAdmin: found.isAdmin, teamId: found.key.teamId, role };
}

/** Which of these keys would still authenticate now (long-lived streams check their key with this). */
export async function liveApiKeyIds(deps: Pick<ServiceDeps, "db" | "clock">, keyIds: string[]): Promise<Set<string>> {
  if (keyIds.length === 0) return new Set();
  const rows = await keysWithRoles(deps.db, deps.clock.now(), inArray(apiKeys.id, keyIds));
  return new Set(rows.filter((row) => row.isAdmin || row.role !== null).map((row) => row.key.id));
}

/** Issues a key and stores only its hash; the secret is returned once. Used by the API and the bootstrap. */
export async function insertApiKey(
  db: DbOrTx,
  deps: Pick<ServiceDeps, "clock" | "random">,
  params: { name: string; userId: string; teamId: string | null; secret?: string; expiresInS?: number; parent?: { id: string; expiresAt: Date | null } },
) {
  const key = params.secret ?? newApiKey(deps.random);
  const now = deps.clock.now();
  const asked = params.expiresInS === undefined ? null : new Date(now.getTime() + params.expiresInS * 1000);
  const parentEnds = params.parent?.expiresAt ?? null;
  // A key never outlives the key that made it: a stolen key cannot mint itself a longer life.
  const expiresAt = asked === null ? parentEnds : parentEnds === null || asked < parentEnds ? asked : parentEnds;
  const [row] = await db
    .insert(apiKeys)
    .values({
      id: newId(deps.random, "apiKey"),
      name: params.name,
      userId: params.userId,
      teamId: params.teamId,
      keyHash: hashSecret(key),
      start: keyStart(key),
      createdAt: now,
      expiresAt,
      parentKeyId: params.parent?.id ?? null,
    })
    .returning();
  return { row: row!, key };
}

export async function createApiKey(deps: ServiceDeps, actor: Actor, body: CreateApiKeyBody) {
  const userId = body.user_id ?? actor.userId;
  const teamId = body.team_id ?? (actor.isAdmin && userId !== actor.userId ? null : actor.teamId);
  if (!actor.isAdmin) {
    if (userId !== actor.userId) throw forbidden("only admins create keys for other users");
    if (teamId !== actor.teamId) throw forbidden("you can create keys only for the team your key acts in");
  }
  return withTransaction(deps.db, async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId));
    if (!user) throw notFound("user");
    if (teamId === null) {
      if (!user.isAdmin) throw invalid("team_id: required for a non-admin user's key (a key acts within one team)");
    } else {
      const [team] = await tx.select({ id: teams.id }).from(teams).where(eq(teams.id, teamId));
      if (!team) throw notFound("team");
      const [member] = await tx
        .select()
        .from(teamMembers)
        .where(and(eq(teamMembers.teamId, teamId), eq(teamMembers.userId, userId)));
      if (!member && !user.isAdmin) throw invalid(`team_id: user ${userId} is not a member of team ${teamId}`);
    }
    const [parent] = await tx.select({ id: apiKeys.id, expiresAt: apiKeys.expiresAt }).from(apiKeys).where(eq(apiKeys.id, actor.keyId));
    const { row, key } = await insertApiKey(tx, deps, { name: body.name, userId, teamId, expiresInS: body.expires_in_s, ...(parent ? { parent } : {}) });
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "api_key.created", targetType: "api_key", targetId: row.id, teamId, metadata: { user_id: userId, name: body.name } },
    ]);
    return { api_key: apiKeyView(row), key };
  });
}

export async function listApiKeys(deps: ServiceDeps, actor: Actor, query: { limit?: number; cursor?: string }) {
  const cursor = decodeCursor(query.cursor);
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const filters: (SQL | undefined)[] = [isNull(apiKeys.revokedAt), pastCursor(cursor, apiKeys.createdAt, apiKeys.id, "asc")];
  if (!actor.isAdmin) filters.push(eq(apiKeys.userId, actor.userId));
  const rows = await deps.db
    .select()
    .from(apiKeys)
    .where(and(...filters))
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(apiKeyView), next_cursor };
}

/**
 * Admins, the key's own user and the owners of the key's team may revoke it;
 * an admin's key is out of an owner's reach (not found), even one acting in
 * the owner's team. Every key minted with it, and with those, dies with it.
 */
export async function revokeApiKey(deps: ServiceDeps, actor: Actor, keyId: string) {
  await withTransaction(deps.db, async (tx) => {
    const [found] = await tx
      .select({ key: apiKeys, ownerIsAdmin: users.isAdmin })
      .from(apiKeys)
      .innerJoin(users, eq(users.id, apiKeys.userId))
      .where(and(eq(apiKeys.id, keyId), isNull(apiKeys.revokedAt)));
    if (!found) throw notFound("API key");
    const row = found.key;
    const own = row.userId === actor.userId;
    const sameTeam = row.teamId !== null && row.teamId === actor.teamId;
    if (!actor.isAdmin && !own) {
      if (!sameTeam || found.ownerIsAdmin) throw notFound("API key");
      if (actor.role !== "owner") throw forbidden("only the key's user, a team owner or an admin can revoke it");
    }
    const now = deps.clock.now();
    await tx.update(apiKeys).set({ revokedAt: now }).where(eq(apiKeys.id, keyId));
    const descendants = await revokeDescendants(tx, keyId, now);
    await recordAudit(tx, deps, [
      {
        actor: actor.userId,
        action: "api_key.revoked",
        targetType: "api_key",
        targetId: keyId,
        teamId: row.teamId,
        metadata: { user_id: row.userId, ...(descendants.length > 0 ? { also_revoked: descendants } : {}) },
      },
    ]);
  });
}

/** Revokes the keys minted with `keyId`, and with those, level by level; returns their IDs. */
async function revokeDescendants(tx: DbOrTx, keyId: string, now: Date): Promise<string[]> {
  const revoked: string[] = [];
  for (let parents = [keyId]; parents.length > 0; ) {
    const children = await tx
      .update(apiKeys)
      .set({ revokedAt: now })
      .where(and(inArray(apiKeys.parentKeyId, parents), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    parents = children.map((child) => child.id);
    revoked.push(...parents);
  }
  return revoked;
}
