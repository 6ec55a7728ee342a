import type { AuditAction, AuditEntry, ListAuditQuery } from "@muster/contract";
import { PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { and, desc, eq, type SQL } from "drizzle-orm";
import { auditLog, type AuditRow } from "../db/schema/index.js";
import { newId } from "../lib/ids.js";
import { forbidden } from "../errors.js";
import type { Actor } from "./actor.js";
import type { DbOrTx, ServiceDeps } from "./context.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

export interface AuditInput {
  actor: string;
  action: AuditAction;
  targetType: "host" | "user" | "team" | "member" | "api_key" | "signing_key" | "certificate_authority" | "secret_key";
  targetId: string;
  teamId: string | null;
  metadata?: Record<string, unknown>;
}

export const SYSTEM_ACTOR = "system";

/** Writes audit rows with the caller's handle, so they commit or roll back with the change they describe. */
export async function recordAudit(db: DbOrTx, deps: Pick<ServiceDeps, "clock" | "random">, entries: AuditInput[]) {
  if (entries.length === 0) return;
  const at = deps.clock.now();
  await db.insert(auditLog).values(
    entries.map((entry) => ({
      id: newId(deps.random, "audit"),
      actor: entry.actor,
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      teamId: entry.teamId,
      metadata: entry.metadata ?? {},
      createdAt: at,
    })),
  );
}

export async function listAudit(deps: ServiceDeps, actor: Actor, query: ListAuditQuery) {
  const filters: (SQL | undefined)[] = [];
  if (!actor.isAdmin) {
    if (actor.role !== "owner" || actor.teamId === null) throw forbidden("the audit log is for admins and team owners");
    filters.push(eq(auditLog.teamId, actor.teamId));
  }
  if (query.target_id) filters.push(eq(auditLog.targetId, query.target_id));
  if (query.action) filters.push(eq(auditLog.action, query.action));
  const cursor = decodeCursor(query.cursor);
  filters.push(pastCursor(cursor, auditLog.createdAt, auditLog.id, "desc"));
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const rows = await deps.db
    .select()
    .from(auditLog)
    .where(and(...filters))
    .orderBy(desc(auditLog.createdAt), desc(auditLog.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(auditView), next_cursor };
}

function auditView(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    actor: row.actor,
    action: row.action,
    target_type: row.targetType,
    target_id: row.targetId,
    team_id: row.teamId,
    created_at: row.createdAt.toISOString(),
    metadata: row.metadata,
  };
}
