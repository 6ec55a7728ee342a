import type { Command, CommandEventType, CommandOutcome, ListCommandsQuery, SendCommandBody } from "@muster/contract";
import { COMMAND_TIMEOUT_DEFAULT_S, PAGE_LIMIT_DEFAULT, RESULT_NOT_RECEIVED } from "@muster/contract";
import { and, asc, desc, eq, inArray, lte, gt, or, sql, type SQL } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostCommands, hostTags, hosts, type HostCommandRow } from "../db/schema/index.js";
import { notFound } from "../errors.js";
import { newId } from "../lib/ids.js";
import type { Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "./context.js";
import { recordEvents } from "./events.js";
import { hostFor } from "./hosts.js";
import { claimIdempotencyKey, saveIdempotentAnswer } from "./idempotency.js";
import { AGENT_CHANNEL_BUS } from "./kv-keys.js";
import { byCreation, decodeCursor, paginate, pastCursor, type Cursor } from "./pagination.js";

/*
 * A command's life, every change of state in this file:
 *   queued ──ack──▶ delivered ──result──▶ succeeded | failed          (ended by the agent: final)
 *   queued ──deadline──▶ expired                                    (the agent never said it had it)
 *   delivered ──deadline──▶ failed "result not received"            (it may have run)
 * An ending by the deadline gives way to a result that arrives later; the
 * agent's first result is final, the same one again changes nothing, and a
 * different one is refused.
 */

const UNFINISHED = ["queued", "delivered"] as const;
/** How many commands one delivery query reads; a pass reads on until a batch comes back short. */
export const DELIVERY_BATCH = 100;
/** Commands ended by their deadline per transaction (each is an event, and a transaction holds 65,536 at most). */
const EXPIRY_BATCH = 1_000;

type EventDeps = Pick<ServiceDeps, "db" | "clock">;

export type BusMessage = { kind: "claim"; host: string; channel: string } | { kind: "commands"; host: string };

/** Tells whichever process holds the host's channel that commands are waiting. */
export async function announceCommands(deps: Pick<ServiceDeps, "kv">, hostId: string): Promise<void> {
  await deps.kv.publish(AGENT_CHANNEL_BUS, JSON.stringify({ kind: "commands", host: hostId } satisfies BusMessage));
}

/**
 * Queues a command for a host (owners and admins: it acts on the machine) and
 * announces it; it travels as soon as the host's channel is up, wherever that is.
 * With an idempotency key, a repeat of an earlier request gets that request's
 * answer (`replayed`) and queues nothing.
 */
export async function sendCommand(
  deps: ServiceDeps,
  actor: Actor,
  hostId: string,
  body: SendCommandBody,
  idempotencyKey?: string,
): Promise<{ command: Command; replayed: boolean }> {
  const sent = await withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage");
    const now = deps.clock.now();
    const idempotent =
      idempotencyKey === undefined ? null : { apiKeyId: actor.keyId, key: idempotencyKey, request: { route: "sendCommand", host_id: hostId, body } };
    if (idempotent) {
      const earlier = await claimIdempotencyKey(tx, now, idempotent);
      if (earlier) return { command: earlier.response as Command, replayed: true };
    }
    const timeoutS = body.timeout_s ?? COMMAND_TIMEOUT_DEFAULT_S;
    const [inserted] = await tx
      .insert(hostCommands)
      .values({
        id: newId(deps.random, "command"),
        hostId,
        type: body.type,
        payload: body.payload ?? null,
        status: "queued",
        timeoutS,
        createdBy: actor.userId,
        createdAt: now,
        expiresAt: new Date(now.getTime() + timeoutS * 1000),
      })
      .returning();
    await recordAudit(tx, deps, [
      {
        actor: actor.userId,
        action: "host.command_sent",
        targetType: "host",
        targetId: hostId,
        teamId: host.teamId,
        metadata: { command_id: inserted!.id, type: body.type },
      },
    ]);
    await recordCommandEvents(tx, deps, "command.queued", [inserted!]);
    const command = commandView(inserted!);
    if (idempotent) await saveIdempotentAnswer(tx, idempotent, { status: 201, response: command });
    return { command, replayed: false };
  });
  // A replay announces too: the first request's process may have died between its commit and its announcement.
  await announceCommands(deps, hostId);
  return sent;
}

export async function getCommand(deps: ServiceDeps, actor: Actor, hostId: string, commandId: string): Promise<Command> {
  await hostFor(deps.db, actor, hostId, "read");
  // Expire this one now rather than wait for the next sweep, so a reader never sees a deadline passed unmarked.
  await expireCommands(deps, deps.clock.now(), { commandId });
  const [row] = await deps.db
    .select()
    .from(hostCommands)
    .where(and(eq(hostCommands.id, commandId), eq(hostCommands.hostId, hostId)));
  if (!row) throw notFound("command");
  return commandView(row);
}

/** A host's commands, newest first, for anyone who may read the host. */
export async function listCommands(deps: ServiceDeps, actor: Actor, hostId: string, query: ListCommandsQuery) {
  const cursor = decodeCursor(query.cursor);
  await hostFor(deps.db, actor, hostId, "read");
  const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
  await expireCommands(deps, deps.clock.now(), { hostId });
  const rows = await deps.db
    .select()
    .from(hostCommands)
    .where(
      and(
        eq(hostCommands.hostId, hostId),
        query.status === undefined ? undefined : eq(hostCommands.status, query.status),
        pastCursor(cursor, hostCommands.createdAt, hostCommands.id, "desc"),
      ),
    )
    .orderBy(desc(hostCommands.createdAt), desc(hostCommands.id))
    .limit(limit + 1);
  const { page, next_cursor } = paginate(rows, limit, byCreation);
  return { items: page.map(commandView), next_cursor };
}

/**
 * One batch of the host's commands to send, oldest first, after `after`:
 * those still queued, and with `resendDelivered` also those the agent
 * acknowledged without reporting a result yet, until their deadline.
 */
export async function commandsToSend(
  db: DbOrTx,
  hostId: string,
  now: Date,
  resendDelivered: boolean,
  after: Cursor | null,
): Promise<HostCommandRow[]> {
  return db
    .select()
    .from(hostCommands)
    .where(
      and(
        eq(hostCommands.hostId, hostId),
        resendDelivered ? inArray(hostCommands.status, [...UNFINISHED]) : eq(hostCommands.status, "queued"),
        gt(hostCommands.expiresAt, now),
        pastCursor(after, hostCommands.createdAt, hostCommands.id, "asc"),
      ),
    )
    .orderBy(asc(hostCommands.createdAt), asc(hostCommands.id))
    .limit(DELIVERY_BATCH);
}

/** The agent acknowledged the command. */
export async function markDelivered(deps: EventDeps, hostId: string, commandId: string, now: Date): Promise<void> {
  await withTransaction(deps.db, async (tx) => {
    const delivered = await tx
      .update(hostCommands)
      .set({ status: "delivered", deliveredAt: now })
      .where(
        and(eq(hostCommands.id, commandId), eq(hostCommands.hostId, hostId), eq(hostCommands.status, "queued"), gt(hostCommands.expiresAt, now)),
      )
      .returning();
    await recordCommandEvents(tx, deps, "command.delivered", delivered);
  });
}

/**
 * What became of a result: `stored` (the command's outcome now), `repeat`
 * (the same result was stored before), `conflict` (another result was stored
 * before; this one is refused) or `unknown` (no such command of this host).
 */
export type ResultFate = "stored" | "repeat" | "conflict" | "unknown";

/**
 * Stores the agent's result for one of its host's commands. The first result
 * wins, atomically across processes (one conditional UPDATE); it also replaces
 * an ending the deadline gave the command, since the agent evidently had it.
 */
export async function recordResult(
  deps: Pick<ServiceDeps, "db" | "logger" | "clock">,
  hostId: string,
  commandId: string,
  outcome: CommandOutcome,
  now: Date,
): Promise<ResultFate> {
  const status = outcome.ok ? "succeeded" : "failed";
  const result = outcome.result ?? null;
  const error = outcome.ok ? null : (outcome.error ?? "the agent reported a failure without a message");
  const ofHost = and(eq(hostCommands.id, commandId), eq(hostCommands.hostId, hostId));
  const stored = await withTransaction(deps.db, async (tx) => {
    const rows = await tx
      .update(hostCommands)
      .set({
        status,
        result,
        error,
        endedBy: "agent",
        deliveredAt: sql`coalesce(${hostCommands.deliveredAt}, ${now.toISOString()}::timestamptz)`,
        completedAt: now,
      })
      .where(and(ofHost, or(inArray(hostCommands.status, [...UNFINISHED]), eq(hostCommands.endedBy, "deadline"))))
      .returning();
    // Also after a deadline ending: the command's state changes again, to the agent's outcome.
    await recordCommandEvents(tx, deps, outcome.ok ? "command.succeeded" : "command.failed", rows);
    return rows;
  });
  if (stored.length > 0) return "stored";
  const sameResult: SQL = result === null ? sql`${hostCommands.result} is null` : sql`${hostCommands.result} = ${JSON.stringify(result)}::jsonb`;
  const [earlier] = await deps.db
    .select({ status: hostCommands.status, error: hostCommands.error, sameResult: sql<boolean>`${sameResult}` })
    .from(hostCommands)
    .where(ofHost);
  if (!earlier) return "unknown";
  if (earlier.status === status && earlier.error === error && earlier.sameResult) return "repeat";
  deps.logger.warn(
    { host_id: hostId, command_id: commandId, stored_status: earlier.status, refused_status: status, refused_error: error },
    "refused a second, different result for a command: the first one stays",
  );
  return "conflict";
}

/**
 * Ends unfinished commands past their deadline (all of them, one host's, or
 * the one named): `expired` if the agent never acknowledged it, `failed` with
 * "result not received" if it did.
 */
export async function expireCommands(deps: EventDeps, now: Date, scope: { commandId?: string; hostId?: string } = {}): Promise<number> {
  const queued = sql`${hostCommands.status} = 'queued'`;
  const overdue = and(
    inArray(hostCommands.status, [...UNFINISHED]),
    lte(hostCommands.expiresAt, now),
    scope.commandId === undefined ? undefined : eq(hostCommands.id, scope.commandId),
    scope.hostId === undefined ? undefined : eq(hostCommands.hostId, scope.hostId),
  );
  let ended = 0;
  for (;;) {
    const batch = await withTransaction(deps.db, async (tx) => {
      // The update checks again what it found: a process ending the same rows at once makes it skip them, not repeat them.
      const due = tx.select({ id: hostCommands.id }).from(hostCommands).where(overdue).limit(EXPIRY_BATCH);
      const changed = await tx
        .update(hostCommands)
        .set({
          status: sql`case when ${queued} then 'expired' else 'failed' end`,
          error: sql`case when ${queued} then null else ${RESULT_NOT_RECEIVED} end`,
          endedBy: "deadline",
          completedAt: sql`${hostCommands.expiresAt}`,
        })
        .where(and(inArray(hostCommands.id, due), overdue))
        .returning();
      await recordCommandEvents(tx, deps, "command.expired", changed.filter((row) => row.status === "expired"));
      await recordCommandEvents(tx, deps, "command.failed", changed.filter((row) => row.status === "failed"));
      return changed.length;
    });
    ended += batch;
    if (batch < EXPIRY_BATCH) return ended;
  }
}

/**
 * Records one event per command, carrying the command as the API returns it;
 * the host's team decides who sees it, and its tags what `?tag=` matches.
 */
async function recordCommandEvents(tx: Tx, deps: Pick<ServiceDeps, "clock">, type: CommandEventType, rows: HostCommandRow[]): Promise<void> {
  if (rows.length === 0) return;
  const hostIds = [...new Set(rows.map((row) => row.hostId))];
  const owners = await tx.select({ id: hosts.id, teamId: hosts.teamId }).from(hosts).where(inArray(hosts.id, hostIds));
  const tagRows = await tx.select({ hostId: hostTags.hostId, tag: hostTags.tag }).from(hostTags).where(inArray(hostTags.hostId, hostIds));
  const teamOf = new Map(owners.map((host) => [host.id, host.teamId]));
  const tagsOf = new Map<string, string[]>();
  for (const { hostId, tag } of tagRows) tagsOf.set(hostId, [...(tagsOf.get(hostId) ?? []), tag]);
  await recordEvents(
    tx,
    deps,
    rows.map((row) => ({ type, teamId: teamOf.get(row.hostId) ?? null, hostId: row.hostId, tags: tagsOf.get(row.hostId) ?? [], data: commandView(row) })),
  );
}

export async function countCommandsByStatus(db: DbOrTx): Promise<{ status: string; count: number }[]> {
  return db
    .select({ status: hostCommands.status, count: sql<number>`count(*)::int` })
    .from(hostCommands)
    .groupBy(hostCommands.status);
}

export function commandView(row: HostCommandRow): Command {
  return {
    id: row.id,
    host_id: row.hostId,
    type: row.type,
    payload: row.payload ?? null,
    status: row.status,
    timeout_s: row.timeoutS,
    result: row.result ?? null,
    error: row.error,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    delivered_at: row.deliveredAt?.toISOString() ?? null,
    completed_at: row.completedAt?.toISOString() ?? null,
    expires_at: row.expiresAt.toISOString(),
  };
}
