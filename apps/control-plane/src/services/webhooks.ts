import type { CreateWebhookBody, ListWebhookDeliveriesQuery, Webhook, WebhookDelivery } from "@muster/contract";
import { PAGE_LIMIT_DEFAULT } from "@muster/contract";
import { and, asc, desc, eq, inArray, isNull, type SQL } from "drizzle-orm";
import { teams, webhookAttempts, webhookDeliveries, webhooks, type WebhookDeliveryRow, type WebhookRow } from "../db/schema/index.js";
import { forbidden, invalid, notFound } from "../errors.js";
import { newId } from "../lib/ids.js";
import { AddressRefused } from "../net/address-policy.js";
import { sealedContext } from "../secrets/sealer.js";
import { requireTeamAccess, type Actor } from "./actor.js";
import type { ServiceDeps } from "./context.js";
import { startFanOut } from "../webhooks/deliverer.js";
import { byCreation, decodeCursor, paginate, pastCursor } from "./pagination.js";

export const WEBHOOK_SECRET_PREFIX = "whsec_";

/** A webhook's URL: http(s), no credentials in it, and a host the address policy lets the control plane call (checked again, resolved, at every delivery). */
export function checkWebhookUrl(deps: Pick<ServiceDeps, "addresses">, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid("url: not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw invalid("url: only http and https URLs take webhooks");
  if (url.username || url.password) throw invalid("url: credentials in the URL would be stored in the clear; use the signature to authenticate");
  try {
    deps.addresses.check(url.hostname.replace(/^\[(.*)\]$/, "$1"), Number(url.port || (url.protocol === "https:" ? 443 : 80)));
  } catch (error) {
    if (error instanceof AddressRefused) throw invalid(`url: ${error.message}`);
    throw error;
  }
  return url;
}

/**
 * Team owners create webhooks for their team's events, admins for a team's
 * (team_id) or for every team's (none). The signing secret is returned this
 * once; listings show only its start.
 */
export async function createWebhook(deps: ServiceDeps, actor: Actor, body: CreateWebhookBody) {
  let teamId: string | null;
  if (actor.isAdmin) teamId = body.team_id ?? null;
  else {
    teamId = body.team_id ?? actor.teamId;
    if (teamId === null) throw forbidden("webhooks belong to a team; this key acts in none");
    requireTeamAccess(actor, teamId, "manage");
  }
  const url = checkWebhookUrl(deps, body.url);
  if (teamId !== null) {
    const [team] = await deps.db.select({ id: teams.id }).from(teams).where(eq(teams.id, teamId));
    if (!team) throw notFound("team");
  }
  await startFanOut(deps.db);
  const secret = body.secret ?? WEBHOOK_SECRET_PREFIX + deps.random(32).toString("base64url");
  const id = newId(deps.random, "webhook");
  const { kekId, sealed } = deps.sealer.seal(Buffer.from(secret), sealedContext.webhookSecret(id));
  const [row] = await deps.db
    .insert(webhooks)
    .values({
      id,
      teamId,
      url: url.toString(),
      types: [...body.types],
      sealedSecret: sealed,
      kekId,
      secretStart: secret.slice(0, WEBHOOK_SECRET_PREFIX.length + 4),
      createdBy: actor.userId,
      createdAt: deps.clock.now(),
    })
    .returning();
  return { webhook: webhookView(row!), secret };
}

/** Loads a live webhook the actor may manage: admins any; owners their team's; anyone else "not found". */
async function webhookFor(deps: ServiceDeps, actor: Actor, webhookId: string): Promise<WebhookRow> {
  const [row] = await deps.db.select().from(webhooks).where(and(eq(webhooks.id, webhookId), isNull(webhooks.deletedAt)));
  if (!row) throw notFound("webhook");
  if (actor.isAdmin) return row;
  if (row.teamId === null || row.teamId !== actor.teamId) throw notFound("webhook");
  requireTeamAccess(actor, row.teamId, "manage", "webhook");
  return row;
}

export async function listWebhooks(deps: ServiceDeps, actor: Actor, query: { limit?: number; cursor?: string }) {
  const filters: (SQL | undefined)[] = [isNull(webhooks.deletedAt), pastCursor(decodeCursor(query.cursor), webhooks.createdAt, webhooks.id, "asc")];
  if (!actor.isAdmin) {
    if (actor.teamId === null || actor.role !== "owner") throw forbidden("webhooks are for admins and team owners");
    filters.push(eq(webhooks.teamId, actor.teamId));
  }
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const rows = await deps.db.select().from(webhooks).where(and(...filters)).orderBy(asc(webhooks.createdAt), asc(webhooks.id)).limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(webhookView), next_cursor };
}

/** Deletes a webhook; its pending deliveries are dropped with it (its record of attempts too). */
export async function deleteWebhook(deps: ServiceDeps, actor: Actor, webhookId: string): Promise<void> {
  await webhookFor(deps, actor, webhookId);
  await deps.db.delete(webhooks).where(eq(webhooks.id, webhookId));
}

export async function listWebhookDeliveries(deps: ServiceDeps, actor: Actor, webhookId: string, query: ListWebhookDeliveriesQuery) {
  await webhookFor(deps, actor, webhookId);
  const filters: (SQL | undefined)[] = [
    eq(webhookDeliveries.webhookId, webhookId),
    pastCursor(decodeCursor(query.cursor), webhookDeliveries.createdAt, webhookDeliveries.id, "desc"),
  ];
  if (query.status) filters.push(eq(webhookDeliveries.status, query.status));
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  const rows = await deps.db
    .select()
    .from(webhookDeliveries)
    .where(and(...filters))
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  const attempts =
    page.length === 0
      ? []
      : await deps.db
          .select()
          .from(webhookAttempts)
          .where(inArray(webhookAttempts.deliveryId, page.map((row) => row.id)))
          .orderBy(asc(webhookAttempts.attempt));
  return { items: page.map((row) => deliveryView(row, attempts.filter((attempt) => attempt.deliveryId === row.id))), next_cursor };
}

export function webhookView(row: WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    types: row.types,
    team_id: row.teamId,
    secret_start: row.secretStart,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
  };
}

function deliveryView(row: WebhookDeliveryRow, attempts: (typeof webhookAttempts.$inferSelect)[]): WebhookDelivery {
  return {
    id: row.id,
    webhook_id: row.webhookId,
    event_id: String(row.eventPosition),
    event_type: row.eventType,
    host_id: row.hostId,
    status: row.status,
    attempts: attempts.map((attempt) => ({
      at: attempt.at.toISOString(),
      status_code: attempt.statusCode,
      error: attempt.error,
      duration_ms: attempt.durationMs,
    })),
    next_attempt_at: row.status === "pending" ? (row.nextAttemptAt?.toISOString() ?? null) : null,
    created_at: row.createdAt.toISOString(),
    completed_at: row.completedAt?.toISOString() ?? null,
  };
}
