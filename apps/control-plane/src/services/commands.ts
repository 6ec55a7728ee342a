import type { Command, CommandEventType, CommandResult, SendCommandBody } from "@muster/contract";
import { COMMAND_TIMEOUT_DEFAULT_S } from "@muster/contract";
import { and, asc, eq, gt, inArray, lte, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostCommands, hostTags, hosts, type HostCommandRow } from "../db/schema/index.js";
import { notFound } from "../errors.js";
import { newId } from "../lib/ids.js";
import type { Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "./context.js";
import { recordEvents } from "./events.js";
import { hostFor } from "./hosts.js";
import { AGENT_CHANNEL_BUS } from "./kv-keys.js";

const UNFINISHED = ["queued", "delivered"] as const;
/** How many waiting commands one delivery pass sends; the rest follow as these are acknowledged. */
const DELIVERY_BATCH = 100;
/** Commands expired per transaction (each is an event, and a transaction holds 65,536 at most). */
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
 */
export async function sendCommand(deps: ServiceDeps, actor: Actor, hostId: string, body: SendCommandBody): Promise<Command> {
  const row = await withTransaction(deps.db, async (tx) => {
    const host = await hostFor(tx, actor, hostId, "manage");
    const now = deps.clock.now();
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
    return inserted!;
  });
  await announceCommands(deps, hostId);
  return commandView(row);
}

export async function getCommand(deps: ServiceDeps, actor: Actor, hostId: string, commandId: string): Promise<Command> {
  await hostFor(deps.db, actor, hostId, "read");
  // Expire this one now rather than wait for the next sweep, so a reader never sees a deadline passed unmarked.
  await expireCommands(deps, deps.clock.now(), commandId);
  const [row] = await deps.db
    .select()
    .from(hostCommands)
    .where(and(eq(hostCommands.id, commandId), eq(hostCommands.hostId, hostId)));
  if (!row) throw notFound("command");
  return commandView(row);
}

/** Commands waiting for the host, oldest first. */
export async function waitingCommands(db: DbOrTx, hostId: string, now: Date): Promise<HostCommandRow[]> {
  return db
    .select()
    .from(hostCommands)
    .where(and(eq(hostCommands.hostId, hostId), eq(hostCommands.status, "queued"), gt(hostCommands.expiresAt, now)))
    .orderBy(asc(hostCommands.createdAt))
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

/** The agent's result; ignored once the command expired (its caller has been told it did). */
export async function completeCommand(deps: EventDeps, hostId: string, outcome: CommandResult, now: Date): Promise<void> {
  await withTransaction(deps.db, async (tx) => {
    const completed = await tx
      .update(hostCommands)
      .set({
        status: outcome.ok ? "succeeded" : "failed",
        result: outcome.result ?? null,
        error: outcome.ok ? null : (outcome.error ?? "the agent reported a failure without a message"),
        deliveredAt: sql`coalesce(${hostCommands.deliveredAt}, ${now.toISOString()}::timestamptz)`,
        completedAt: now,
      })
      .where(
        and(
          eq(hostCommands.id, outcome.id),
          eq(hostCommands.hostId, hostId),
          inArray(hostCommands.status, [...UNFINISHED]),
          gt(hostCommands.expiresAt, now),
        ),
      )
      .returning();
    await recordCommandEvents(tx, deps, outcome.ok ? "command.succeeded" : "command.failed", completed);
  });
}

/** Marks unfinished commands past their deadline expired (all of them, or the one named); returns how many. */
export async function expireCommands(deps: EventDeps, now: Date, commandId?: string): Promise<number> {
  let expired = 0;
  for (;;) {
    const batch = await withTransaction(deps.db, async (tx) => {
      const overdue = and(
        inArray(hostCommands.status, [...UNFINISHED]),
        lte(hostCommands.expiresAt, now),
        commandId === undefined ? undefined : eq(hostCommands.id, commandId),
      );
      // The update checks again what it found: a process expiring the same rows at once makes it skip them, not repeat them.
      const due = tx.select({ id: hostCommands.id }).from(hostCommands).where(overdue).limit(EXPIRY_BATCH);
      const changed = await tx
        .update(hostCommands)
        .set({ status: "expired", completedAt: sql`${hostCommands.expiresAt}` })
        .where(and(inArray(hostCommands.id, due), overdue))
        .returning();
      await recordCommandEvents(tx, deps, "command.expired", changed);
      return changed.length;
    });
    expired += batch;
    if (batch < EXPIRY_BATCH) return expired;
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
    rows.map((row) => ({
      type,
      teamId: teamOf.get(row.hostId) ?? null,
      hostId: row.hostId,
      tags: tagsOf.get(row.hostId) ?? [],
      data: commandView(row),
    })),
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
