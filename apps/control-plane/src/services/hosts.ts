import type { CreateHostBody, ListHostsQuery } from "@muster/contract";
import { canonicalArch, MAX_TAGS_PER_HOST, PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { and, asc, count, eq, exists, ilike, isNull, type SQL } from "drizzle-orm";
import { hostRefreshTokens, hostRegistrationTokens, hostTags, hosts, teams, type HostRow } from "../db/schema/index.js";
import { conflict, invalid, notFound } from "../errors.js";
import { newId } from "../lib/ids.js";
import { hashSecret, newRegistrationToken } from "../lib/secrets.js";
import { requireAdmin, requireTeamAccess, type Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import type { Tx } from "../db/client.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "./context.js";
import { publishCredentialState } from "./credential-state.js";
import { revokeHostCertificates } from "./host-certificates.js";
import { recordEvents } from "./events.js";
import { hostEvent, recordHostEvents } from "./host-events.js";
import { hostViews } from "./host-views.js";
import { registrationTokenKey } from "./kv-keys.js";
import { LivenessSet } from "./liveness-set.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

/**
 * Loads a live host the actor may act on. Regular hosts and other teams' hosts
 * are "not found" to non-admins; `manage` needs the owner role in the host's team.
 * Inside a transaction the row is locked, so concurrent changes to one host queue up.
 */
export async function hostFor(db: DbOrTx, actor: Actor, hostId: string, need: "read" | "manage", lock = false): Promise<HostRow> {
  const query = db.select().from(hosts).where(and(eq(hosts.id, hostId), isNull(hosts.deletedAt)));
  const [row] = lock ? await query.for("update") : await query;
  if (!row) throw notFound("host");
  if (actor.isAdmin) return row;
  if (row.teamId === null) throw notFound("host");
  requireTeamAccess(actor, row.teamId, need, "host");
  return row;
}

/**
 * Issues a one-time registration token: the live token goes to the KV store with
 * its TTL, its audit row to the database; any earlier unused token of the host dies.
 */
async function issueRegistrationToken(tx: DbOrTx, deps: ServiceDeps, hostId: string, createdBy: string) {
  const now = deps.clock.now();
  const superseded = await tx
    .update(hostRegistrationTokens)
    .set({ supersededAt: now })
    .where(
      and(eq(hostRegistrationTokens.hostId, hostId), isNull(hostRegistrationTokens.usedAt), isNull(hostRegistrationTokens.supersededAt)),
    )
    .returning({ tokenHash: hostRegistrationTokens.tokenHash });
  await deps.kv.del(superseded.map((row) => registrationTokenKey(row.tokenHash)));

  const token = newRegistrationToken(deps.random);
  const tokenHash = hashSecret(token);
  const ttlMs = deps.config.registrationTokenTtlS * 1000;
  const expiresAt = new Date(now.getTime() + ttlMs);
  const tokenId = newId(deps.random, "hostRegistrationToken");
  await tx.insert(hostRegistrationTokens).values({ id: tokenId, hostId, tokenHash, createdBy, createdAt: now, expiresAt });
  await deps.kv.set(registrationTokenKey(tokenHash), JSON.stringify({ hostId, tokenId }), { ttlMs });
  return { registration_token: token, registration_token_expires_at: expiresAt.toISOString() };
}

export async function createHost(deps: ServiceDeps, actor: Actor, body: CreateHostBody) {
  let teamId: string | null = null;
  if (body.type === "regular") {
    requireAdmin(actor);
    if (body.team_id !== undefined) throw invalid("team_id: regular hosts belong to no team; use type byoc");
  } else {
    teamId = body.team_id ?? actor.teamId;
    if (teamId === null) throw invalid("team_id: required for a byoc host");
    requireTeamAccess(actor, teamId, "manage");
  }
  return withTransaction(deps.db, async (tx) => {
    if (teamId !== null) {
      const [team] = await tx.select({ id: teams.id }).from(teams).where(eq(teams.id, teamId));
      if (!team) throw notFound("team");
    }
    const now = deps.clock.now();
    const [row] = await tx
      .insert(hosts)
      .values({
        id: newId(deps.random, "host"),
        type: body.type,
        teamId,
        provider: body.provider ?? null,
        availabilityZone: body.availability_zone ?? null,
        status: "pending",
        createdBy: actor.userId,
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    const host = row!;
    const tags = body.tags ?? [];
    if (tags.length > 0) await tx.insert(hostTags).values(tags.map((tag) => ({ hostId: host.id, tag, createdAt: now })));
    const token = await issueRegistrationToken(tx, deps, host.id, actor.userId);
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "host.created", targetType: "host", targetId: host.id, teamId, metadata: { type: body.type, tags } },
    ]);
    const [view] = await hostViews(tx, deps.kv, [host]);
    await recordEvents(tx, deps, [hostEvent("host.created", view!)]);
    return { host: view!, ...token };
  });
}

export async function listHosts(deps: ServiceDeps, actor: Actor, query: ListHostsQuery) {
  const cursor = decodeCursor(query.cursor);
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const filters: (SQL | undefined)[] = [isNull(hosts.deletedAt), pastCursor(cursor, hosts.createdAt, hosts.id, "asc")];
  if (!actor.isAdmin) {
    filters.push(eq(hosts.type, "byoc"), actor.teamId === null ? isNull(hosts.id) : eq(hosts.teamId, actor.teamId));
  }
  if (query.status) filters.push(eq(hosts.status, query.status));
  if (query.type) filters.push(eq(hosts.type, query.type));
  if (query.team_id) filters.push(eq(hosts.teamId, query.team_id));
  if (query.arch) filters.push(eq(hosts.arch, canonicalArch(query.arch)));
  // A prefix, not a pattern: the caller's % and _ are literal.
  if (query.hostname) filters.push(ilike(hosts.hostname, `${query.hostname.replace(/[\\%_]/g, "\\$&")}%`));
  if (query.tag) {
    const tagged = deps.db
      .select({ one: hostTags.hostId })
      .from(hostTags)
      .where(and(eq(hostTags.hostId, hosts.id), eq(hostTags.tag, query.tag)));
    filters.push(exists(tagged));
  }
  const rows = await deps.db
    .select()
    .from(hosts)
    .where(and(...filters))
    .orderBy(asc(hosts.createdAt), asc(hosts.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: await hostViews(deps.db, deps.kv, page), next_cursor };
}

export async function getHost(deps: ServiceDeps, actor: Actor, hostId: string) {
  const row = await hostFor(deps.db, actor, hostId, "read");
  const [view] = await hostViews(deps.db, deps.kv, [row]);
  return view!;
}

/** Deletes a host and kills its credentials at once: cached state flips to "deleted" before the commit. */
export async function deleteHost(deps: ServiceDeps, actor: Actor, hostId: string) {
  const revoked = await withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage", true);
    const now = deps.clock.now();
    const [deleted] = await tx
      .update(hosts)
      .set({ deletedAt: now, updatedAt: now, credentialFamily: null })
      .where(eq(hosts.id, hostId))
      .returning();
    await tx
      .update(hostRefreshTokens)
      .set({ revokedAt: now })
      .where(and(eq(hostRefreshTokens.hostId, hostId), isNull(hostRefreshTokens.revokedAt)));
    const unused = await tx
      .update(hostRegistrationTokens)
      .set({ supersededAt: now })
      .where(and(eq(hostRegistrationTokens.hostId, hostId), isNull(hostRegistrationTokens.usedAt), isNull(hostRegistrationTokens.supersededAt)))
      .returning({ tokenHash: hostRegistrationTokens.tokenHash });
    await deps.kv.del(unused.map((row) => registrationTokenKey(row.tokenHash)));
    const certificates = await revokeHostCertificates(tx, deps, hostId);
    await publishCredentialState(deps.kv, hostId, { kind: "deleted" });
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "host.deleted", targetType: "host", targetId: hostId, teamId: host.teamId, metadata: { type: host.type } },
    ]);
    await recordHostEvents(tx, deps, "host.deleted", [deleted!]);
    return certificates;
  });
  await new LivenessSet(deps.kv).remove(hostId);
  if (revoked > 0) await deps.revocationLists.changed();
}

export async function regenerateHostToken(deps: ServiceDeps, actor: Actor, hostId: string) {
  return withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage", true);
    const token = await issueRegistrationToken(tx, deps, hostId, actor.userId);
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "host.token_regenerated", targetType: "host", targetId: hostId, teamId: host.teamId },
    ]);
    const [view] = await hostViews(tx, deps.kv, [host]);
    await recordEvents(tx, deps, [hostEvent("host.token_regenerated", view!)]);
    return { host: view!, ...token };
  });
}

export async function addHostTag(deps: ServiceDeps, actor: Actor, hostId: string, tag: string) {
  await withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage", true);
    const tags = await tx.select({ tag: hostTags.tag }).from(hostTags).where(eq(hostTags.hostId, hostId));
    if (tags.some((row) => row.tag === tag)) return;
    if (tags.length >= MAX_TAGS_PER_HOST) throw conflict(`host ${hostId} already has ${MAX_TAGS_PER_HOST} tags, the most it may have`);
    const now = deps.clock.now();
    await tx.insert(hostTags).values({ hostId, tag, createdAt: now });
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "host.tag_added", targetType: "host", targetId: hostId, teamId: host.teamId, metadata: { tag } },
    ]);
    await tagsChanged(tx, deps, hostId, now, []);
  });
}

export async function removeHostTag(deps: ServiceDeps, actor: Actor, hostId: string, tag: string) {
  await withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage", true);
    const removed = await tx
      .delete(hostTags)
      .where(and(eq(hostTags.hostId, hostId), eq(hostTags.tag, tag)))
      .returning({ tag: hostTags.tag });
    if (removed.length === 0) return;
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "host.tag_removed", targetType: "host", targetId: hostId, teamId: host.teamId, metadata: { tag } },
    ]);
    await tagsChanged(tx, deps, hostId, deps.clock.now(), [tag]);
  });
}

/** Notes the change on the host and records host.tags_changed; `removed` tags still match `?tag=` for this event. */
async function tagsChanged(tx: Tx, deps: ServiceDeps, hostId: string, now: Date, removed: string[]): Promise<void> {
  const [changed] = await tx.update(hosts).set({ updatedAt: now }).where(eq(hosts.id, hostId)).returning();
  const [view] = await hostViews(tx, deps.kv, [changed!]);
  await recordEvents(tx, deps, [hostEvent("host.tags_changed", view!, removed)]);
}

export async function listHostTags(deps: ServiceDeps, actor: Actor, hostId: string): Promise<string[]> {
  await hostFor(deps.db, actor, hostId, "read");
  const rows = await deps.db.select({ tag: hostTags.tag }).from(hostTags).where(eq(hostTags.hostId, hostId)).orderBy(asc(hostTags.tag));
  return rows.map((row) => row.tag);
}

export async function countHostsByStatus(db: DbOrTx) {
  return db.select({ status: hosts.status, count: count() }).from(hosts).where(isNull(hosts.deletedAt)).groupBy(hosts.status);
}
