import { EVENT_TYPES, matchesEventTypes, type Command, type EventsQuery, type EventType, type Host } from "@muster/contract";
import { sql, type SQL } from "drizzle-orm";
import type { Db, Tx } from "../db/client.js";
import { rowsOf } from "../db/rows.js";
import { DomainError } from "../errors.js";
import type { Actor } from "./actor.js";
import type { DbOrTx, ServiceDeps } from "./context.js";
import { withTransaction } from "./context.js";

/**
 * The event log: one table, written in the transaction of the change each
 * event describes, read by the stream (GET /v1/events) and the webhooks.
 *
 * Why positions are not a sequence: a sequence number is taken at insert, but
 * transactions commit in another order, so a reader that asked for "after 41"
 * could see 43 committed while 42 is still in flight, move on, and never see
 * 42. Instead an event's position is its transaction's ID (xid8) times
 * EVENTS_PER_TX plus its rank within the transaction, and readers only take
 * events below the horizon: the oldest transaction still running when they
 * read (pg_snapshot_xmin of their own snapshot). Every transaction below the
 * horizon has ended, so nothing can appear there later; everything at or
 * above it waits for the next read. Positions therefore only ever grow in the
 * order readers hand events out, whichever order transactions commit in, and
 * writers never wait for each other. The price: an event waits for any older
 * write transaction in the database to end (milliseconds here; a client
 * holding a transaction open for long would hold the stream back as long).
 */
export const EVENTS_PER_TX = 65_536;
const PER_TX = BigInt(EVENTS_PER_TX);

/** An event as a change records it. */
export interface NewEvent {
  type: EventType;
  teamId: string | null;
  hostId: string;
  /** The host's tags when it happened (for host.tags_changed: before and after), which `?tag=` matches. */
  tags: readonly string[];
  data: Host | Command;
}

/** An event as the log holds it, with its text as the API sends it. */
export interface StoredEvent {
  position: bigint;
  type: EventType;
  teamId: string | null;
  hostId: string;
  tags: string[];
  occurredAt: string;
  /** `{id, type, occurred_at, team_id, host_id, data}` as JSON text. */
  json: string;
}

/** Transactions that wrote events: the database handle announces them once they commit (see announcingCommits). */
const wroteEvents = new WeakSet<object>();

/** Writes events with the caller's transaction, so they commit or roll back with the change they describe. */
export async function recordEvents(tx: Tx, deps: Pick<ServiceDeps, "clock">, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  const payload = JSON.stringify(
    events.map((event) => ({ type: event.type, team_id: event.teamId, host_id: event.hostId, tags: event.tags, data: event.data })),
  );
  const [written] = await rowsOf<{ base: string; last: string }>(
    tx,
    sql`
      with base as (select pg_current_xact_id()::text::bigint * ${EVENTS_PER_TX} as b),
      next as (
        select coalesce(
          (select max(e.position) + 1 from events e, base where e.position >= base.b and e.position < base.b + ${EVENTS_PER_TX}),
          (select b from base)
        ) as n
      ),
      inserted as (
        insert into events (position, type, team_id, host_id, tags, occurred_at, data)
        select next.n + v.ord - 1, v.e->>'type', v.e->>'team_id', v.e->>'host_id', (v.e->'tags')::jsonb, ${deps.clock.now().toISOString()}::timestamptz, v.e->'data'
        from next, json_array_elements(${payload}::json) with ordinality as v(e, ord)
        returning position
      )
      select (select b from base)::text as base, max(position)::text as last from inserted`,
  );
  // Ranks past the transaction's block would collide with another transaction's positions: refuse, and the change rolls back.
  if (BigInt(written!.last) - BigInt(written!.base) >= PER_TX) {
    throw new Error(`a transaction may write at most ${EVENTS_PER_TX} events; write the change in smaller batches`);
  }
  wroteEvents.add(tx);
}

/**
 * The database handle the services use: after a transaction that wrote
 * events commits, `announce` tells every process's stream to read the log.
 * Wrapping the handle means no write path can forget to announce.
 */
export function announcingCommits(db: Db, announce: () => void): Db {
  const wrapped = Object.create(db) as Db;
  wrapped.transaction = (async (work: (tx: Tx) => Promise<unknown>, config?: Parameters<Db["transaction"]>[1]) => {
    let wrote = false;
    const result = await db.transaction(async (tx) => {
      const value = await work(tx);
      wrote = wroteEvents.has(tx);
      return value;
    }, config);
    if (wrote) announce();
    return result;
  }) as Db["transaction"];
  return wrapped;
}

/** Which events a reader wants, beyond what its scope allows. */
export interface EventFilter {
  /** Null: every team's (admins); otherwise only this team's. */
  teamId: string | null;
  /** Type filters as given (`host.*` allowed); empty: every type. */
  types: readonly string[];
  hostId?: string | undefined;
  tag?: string | undefined;
}

/** A caller's filter within their scope: admins see every team's events (and regular hosts'), others their team's. */
export function scopedFilter(actor: Actor, query: EventsQuery): EventFilter {
  if (!actor.isAdmin && actor.teamId === null) throw new DomainError("forbidden", "this API key acts in no team: it sees no events");
  return { teamId: actor.isAdmin ? null : actor.teamId, types: query.type ?? [], hostId: query.host_id, tag: query.tag };
}

/** Whether a stored event passes a reader's filter. */
export function eventMatches(event: Pick<StoredEvent, "type" | "teamId" | "hostId" | "tags">, filter: EventFilter): boolean {
  if (filter.teamId !== null && event.teamId !== filter.teamId) return false;
  if (filter.hostId !== undefined && event.hostId !== filter.hostId) return false;
  if (filter.tag !== undefined && !event.tags.includes(filter.tag)) return false;
  return matchesEventTypes(event.type, filter.types);
}

function filterSql(filter: EventFilter | undefined): SQL {
  if (!filter) return sql``;
  const parts: SQL[] = [];
  if (filter.teamId !== null) parts.push(sql` and team_id = ${filter.teamId}`);
  if (filter.hostId !== undefined) parts.push(sql` and host_id = ${filter.hostId}`);
  if (filter.tag !== undefined) parts.push(sql` and tags @> ${JSON.stringify([filter.tag])}::jsonb`);
  if (filter.types.length > 0) {
    const types = EVENT_TYPES.filter((type) => matchesEventTypes(type, filter.types));
    parts.push(sql` and type in (${sql.join(types.map((type) => sql`${type}`), sql`, `)})`);
  }
  return sql.join(parts);
}

interface EventRowText {
  horizon: string;
  held: boolean | null;
  position: string | null;
  type: EventType;
  team_id: string | null;
  host_id: string;
  tags: string;
  occurred_at: string;
  data: string;
}

export interface ReadyEvents {
  events: StoredEvent[];
  /** Every event below this position that passes the filter was read (unless the page was full). */
  horizon: bigint;
  /** Events at or past the horizon exist: a transaction older than theirs is still running. */
  heldBack: boolean;
}

/** Events after `after` that no running transaction can still precede, in position order, at most `limit`. */
export async function readReadyEvents(db: DbOrTx, after: bigint, limit: number, filter?: EventFilter): Promise<ReadyEvents> {
  const rows = await rowsOf<EventRowText>(
    db,
    sql`
      with h as (select pg_snapshot_xmin(pg_current_snapshot())::text::bigint * ${EVENTS_PER_TX} as horizon)
      select h.horizon::text as horizon,
             (select max(position) from events) >= h.horizon as held,
             e.position::text as position, e.type, e.team_id, e.host_id, e.tags::text as tags,
             to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as occurred_at,
             e.data::text as data
      from h left join lateral (
        select * from events
        where position > ${after.toString()}::bigint and position < h.horizon${filterSql(filter)}
        order by position
        limit ${limit}
      ) e on true`,
  );
  const first = rows[0]!;
  const events = rows.flatMap((row): StoredEvent[] => {
    if (row.position === null) return [];
    const event = {
      position: BigInt(row.position),
      type: row.type,
      teamId: row.team_id,
      hostId: row.host_id,
      tags: JSON.parse(row.tags) as string[],
      occurredAt: row.occurred_at,
    };
    return [{ ...event, json: eventJson(event, row.data) }];
  });
  return { events, horizon: BigInt(first.horizon), heldBack: first.held === true };
}

/** The event as the API sends it; `data` is spliced in as stored, never parsed. */
function eventJson(event: Omit<StoredEvent, "json" | "tags">, data: string): string {
  return (
    `{"id":"${event.position}","type":${JSON.stringify(event.type)},"occurred_at":"${event.occurredAt}",` +
    `"team_id":${JSON.stringify(event.teamId)},"host_id":${JSON.stringify(event.hostId)},"data":${data}}`
  );
}

/** The last position readers can take now (null for an empty log), as a subquery. */
const READY_HEAD = sql`(select max(position)::text from events
  where position < pg_snapshot_xmin(pg_current_snapshot())::text::bigint * ${EVENTS_PER_TX})`;

/** The last position readers can take now (0 for an empty log). */
export async function readyHead(db: DbOrTx): Promise<bigint> {
  const [row] = await rowsOf<{ head: string | null }>(db, sql`select ${READY_HEAD} as head`);
  return row?.head ? BigInt(row.head) : 0n;
}

/**
 * Where a stream that starts "from now" begins. It names the ready head
 * (a position the log holds, so resuming from it works), but "now" is the
 * moment it opened: events committed by then and not yet ready (held behind
 * an older transaction, or not yet read by this process's hub) are not
 * sent, while an older transaction still running then sends its events when
 * it commits. Which transactions had committed is the database's snapshot
 * of that moment: `xmin:xmax:xip,…`, every ID below xmin ended, every ID at
 * or past xmax not yet begun, the listed ones running.
 */
export interface StreamStart {
  position: bigint;
  /** Whether the event at this position was committed before the stream opened. */
  committedBefore: (position: bigint) => boolean;
}

export async function streamStart(db: DbOrTx): Promise<StreamStart> {
  const [row] = await rowsOf<{ snapshot: string; head: string | null }>(db, sql`select pg_current_snapshot()::text as snapshot, ${READY_HEAD} as head`);
  const [xmin, xmax, running] = row!.snapshot.split(":") as [string, string, string];
  const [min, max] = [BigInt(xmin), BigInt(xmax)];
  const inProgress = new Set(running === "" ? [] : running.split(",").map(BigInt));
  return {
    position: row!.head ? BigInt(row!.head) : 0n,
    committedBefore: (position) => {
      const xid = position / PER_TX;
      return xid < min || (xid < max && !inProgress.has(xid));
    },
  };
}

const PRUNED_MARK = "pruned";

/**
 * Whether a stream can resume exactly after `after`: no event past it was
 * pruned, and it is not past everything this log ever held (an ID of another
 * database, or of one restored from an older backup). Otherwise 410 gone,
 * with the oldest event the log still holds.
 */
export async function checkResumable(db: DbOrTx, after: bigint): Promise<void> {
  const [row] = await rowsOf<{ pruned: string | null; oldest: string | null; newest: string | null }>(
    db,
    sql`select (select position::text from event_marks where name = ${PRUNED_MARK}) as pruned,
               (select min(position)::text from events) as oldest,
               (select max(position)::text from events) as newest`,
  );
  const pruned = row?.pruned ? BigInt(row.pruned) : 0n;
  const newest = row?.newest ? BigInt(row.newest) : 0n;
  const oldest = row?.oldest ?? null;
  if (after < pruned) {
    throw gone(`event ${after} is older than the log keeps (MUSTER_EVENTS_RETENTION_S): resync from a list, then stream from now`, oldest);
  }
  if (after > (newest > pruned ? newest : pruned)) {
    throw gone(`event ${after} is not in this log (another deployment's, or from before a restore): resync from a list, then stream from now`, oldest);
  }
}

/** 410: the stream cannot resume where the client asks; `oldest_id` names the oldest event the log still holds. */
function gone(message: string, oldestId: string | null): DomainError {
  return new DomainError("gone", message, undefined, { oldest_id: oldestId });
}

/** Deletes up to `batch` events older than `cutoff` and raises the pruned mark past them; returns how many went. */
export async function pruneEvents(db: DbOrTx, cutoff: Date, batch: number): Promise<number> {
  return withTransaction(db, async (tx) => {
    const [pruned] = await rowsOf<{ count: string; last: string | null }>(
      tx,
      sql`
        with gone as (
          delete from events
          where position in (select position from events where occurred_at < ${cutoff.toISOString()}::timestamptz order by position limit ${batch})
          returning position
        )
        select count(*)::text as count, max(position)::text as last from gone`,
    );
    if (!pruned?.last) return 0;
    await tx.execute(sql`
      insert into event_marks (name, position) values (${PRUNED_MARK}, ${pruned.last}::bigint)
      on conflict (name) do update set position = greatest(event_marks.position, excluded.position)`);
    return Number(pruned.count);
  });
}

/** Parses an event ID a client sent (Last-Event-ID, ?after=). */
export function parseEventId(raw: string, where: string): bigint {
  if (!/^[0-9]{1,19}$/.test(raw) || BigInt(raw) > 9_223_372_036_854_775_807n) {
    throw new DomainError("invalid_request", `${where}: not an event ID this API sent (a decimal number)`);
  }
  return BigInt(raw);
}
