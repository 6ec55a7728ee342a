import type { AddMemberBody, CreateTeamBody, Member, Team } from "@muster/contract";
import { PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { and, asc, eq, inArray, isNull, type SQL } from "drizzle-orm";
import { apiKeys, teamMembers, teams, users, type MemberRow, type TeamRow } from "../db/schema/index.js";
import { conflict, notFound } from "../errors.js";
import { newId } from "../lib/ids.js";
import { requireAdmin, requireTeamAccess, type Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

export function teamView(row: TeamRow): Team {
  return { id: row.id, name: row.name, created_at: row.createdAt.toISOString() };
}

function memberView(row: MemberRow): Member {
  return { team_id: row.teamId, user_id: row.userId, role: row.role, created_at: row.createdAt.toISOString() };
}

export async function createTeam(deps: ServiceDeps, actor: Actor, body: CreateTeamBody) {
  requireAdmin(actor);
  return withTransaction(deps.db, async (tx) => {
    const [row] = await tx
      .insert(teams)
      .values({ id: newId(deps.random, "team"), name: body.name, createdAt: deps.clock.now() })
      .returning();
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "team.created", targetType: "team", targetId: row!.id, teamId: row!.id, metadata: { name: body.name } },
    ]);
    return { team: teamView(row!) };
  });
}

export async function listTeams(deps: ServiceDeps, actor: Actor, query: { limit?: number; cursor?: string }) {
  const cursor = decodeCursor(query.cursor);
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const filters: (SQL | undefined)[] = [
    pastCursor(cursor, teams.createdAt, teams.id, "asc"),
  ];
  if (!actor.isAdmin) {
    const mine = deps.db.select({ id: teamMembers.teamId }).from(teamMembers).where(eq(teamMembers.userId, actor.userId));
    filters.push(inArray(teams.id, mine));
  }
  const rows = await deps.db
    .select()
    .from(teams)
    .where(and(...filters))
    .orderBy(asc(teams.createdAt), asc(teams.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(teamView), next_cursor };
}

export async function addMember(deps: ServiceDeps, actor: Actor, teamId: string, body: AddMemberBody) {
  requireTeamAccess(actor, teamId, "manage");
  return withTransaction(deps.db, async (tx) => {
    const [team] = await tx.select({ id: teams.id }).from(teams).where(eq(teams.id, teamId));
    if (!team) throw notFound("team");
    const [user] = await tx.select({ id: users.id }).from(users).where(eq(users.id, body.user_id));
    if (!user) throw notFound("user");
    const [row] = await tx
      .insert(teamMembers)
      .values({ teamId, userId: body.user_id, role: body.role, createdAt: deps.clock.now() })
      .onConflictDoNothing()
      .returning();
    if (!row) throw conflict(`user ${body.user_id} is already a member of team ${teamId}`);
    await recordAudit(tx, deps, [
      { actor: actor.userId, action: "member.added", targetType: "member", targetId: body.user_id, teamId, metadata: { role: body.role } },
    ]);
    return { member: memberView(row) };
  });
}

export async function listMembers(deps: ServiceDeps, actor: Actor, teamId: string, query: { limit?: number; cursor?: string }) {
  requireTeamAccess(actor, teamId, "read");
  const [team] = await deps.db.select({ id: teams.id }).from(teams).where(eq(teams.id, teamId));
  if (!team) throw notFound("team");
  const cursor = decodeCursor(query.cursor);
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const rows = await deps.db
    .select()
    .from(teamMembers)
    .where(and(eq(teamMembers.teamId, teamId), pastCursor(cursor, teamMembers.createdAt, teamMembers.userId, "asc")))
    .orderBy(asc(teamMembers.createdAt), asc(teamMembers.userId))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, (row) => ({ at: row.createdAt, id: row.userId }));
  return { items: page.map(memberView), next_cursor };
}

/** Removing a member also revokes that user's keys for the team: off-boarding takes effect at once. */
export async function removeMember(deps: ServiceDeps, actor: Actor, teamId: string, userId: string) {
  requireTeamAccess(actor, teamId, "manage");
  await withTransaction(deps.db, async (tx) => {
    const members = await tx.select().from(teamMembers).where(eq(teamMembers.teamId, teamId)).for("update");
    const member = members.find((m) => m.userId === userId);
    if (!member) throw notFound("member");
    if (member.role === "owner" && members.filter((m) => m.role === "owner").length === 1) {
      throw conflict("cannot remove the team's last owner; make another member owner first");
    }
    await tx.delete(teamMembers).where(and(eq(teamMembers.teamId, teamId), eq(teamMembers.userId, userId)));
    const revoked = await tx
      .update(apiKeys)
      .set({ revokedAt: deps.clock.now() })
      .where(and(eq(apiKeys.userId, userId), eq(apiKeys.teamId, teamId), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    await recordAudit(tx, deps, [
      {
        actor: actor.userId,
        action: "member.removed",
        targetType: "member",
        targetId: userId,
        teamId,
        metadata: { role: member.role, revoked_api_keys: revoked.map((k) => k.id) },
      },
    ]);
  });
}
