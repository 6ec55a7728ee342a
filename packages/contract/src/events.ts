import { Type, type Static, type TLiteral, type TObject, type TSchema, type TString, type TUnion, type TNull } from "@sinclair/typebox";
import { Command } from "./commands.js";
import { Nullable, Timestamp } from "./common.js";
import { Host, TAG_PATTERN } from "./hosts.js";
import { IdSchema } from "./ids.js";

/** What happens to hosts, each written to the event log by the change that causes it. */
export const HOST_EVENT_TYPES = [
  "host.created",
  "host.registered",
  "host.online",
  "host.offline",
  "host.deleted",
  "host.tags_changed",
  "host.token_regenerated",
  "host.credentials_revoked",
  "host.certificate_issued",
] as const;

/** What happens to commands, one event per state a command enters. */
export const COMMAND_EVENT_TYPES = ["command.queued", "command.delivered", "command.succeeded", "command.failed", "command.expired"] as const;

export const EVENT_TYPES = [...HOST_EVENT_TYPES, ...COMMAND_EVENT_TYPES] as const;
export type HostEventType = (typeof HOST_EVENT_TYPES)[number];
export type CommandEventType = (typeof COMMAND_EVENT_TYPES)[number];
export type EventType = (typeof EVENT_TYPES)[number];

/** A filter on event types: one type, or every type of a kind (`host.*`, `command.*`). */
export type EventTypeFilter = EventType | "host.*" | "command.*";

export const EVENT_TYPE_FILTERS = [...EVENT_TYPES, "host.*", "command.*"] as const satisfies readonly EventTypeFilter[];

export const EventTypeFilterSchema = Type.Union(
  EVENT_TYPE_FILTERS.map((filter) => Type.Literal(filter)),
  { description: "an event type, or host.* / command.* for every type of that kind" },
);

/** Whether an event type passes a list of filters (an empty list passes everything). */
export function matchesEventTypes(type: string, filters: readonly string[]): boolean {
  if (filters.length === 0) return true;
  return filters.some((filter) => filter === type || (filter.endsWith(".*") && type.startsWith(filter.slice(0, -1))));
}

/**
 * An event's position in the log: a decimal number, opaque to clients, that
 * increases in the order the stream delivers events (not necessarily by one).
 */
export const EVENT_ID_PATTERN = "^[0-9]{1,19}$";
export const EventId = Type.String({ pattern: EVENT_ID_PATTERN, description: "opaque; IDs increase in stream order" });

type EventSchema<T extends string, D extends TSchema> = TObject<{
  id: typeof EventId;
  type: TLiteral<T>;
  occurred_at: typeof Timestamp;
  team_id: TUnion<[TString, TNull]>;
  host_id: TString;
  data: D;
}>;

function eventSchema<const T extends string, D extends TSchema>(type: T, data: D, name: string): EventSchema<T, D> {
  return Type.Object(
    {
      id: EventId,
      type: Type.Literal(type),
      occurred_at: Timestamp,
      team_id: Nullable(IdSchema("team")),
      host_id: IdSchema("host"),
      data,
    },
    { $id: name, description: `${type}: data is the ${data.$id ?? "resource"} as the API returned it when the event happened` },
  );
}

type Schemas<Types extends readonly string[], D extends TSchema> = { [K in keyof Types]: EventSchema<Types[K] & string, D> };

function eventSchemas<const Types extends readonly string[], D extends TSchema>(types: Types, data: D): Schemas<Types, D> {
  const pascal = (type: string) => type.replace(/(^|[._])(\w)/g, (_, __, letter: string) => letter.toUpperCase());
  return types.map((type) => eventSchema(type, data, `${pascal(type)}Event`)) as Schemas<Types, D>;
}

/**
 * Every event: `{id, type, occurred_at, team_id, host_id, data}`, a union
 * discriminated on `type`. Host events carry the host, command events the
 * command; both name the host and its team, which decide who may see them.
 */
export const MusterEvent = Type.Union([...eventSchemas(HOST_EVENT_TYPES, Host), ...eventSchemas(COMMAND_EVENT_TYPES, Command)], {
  $id: "Event",
  description: "One event of the log, discriminated on type",
});
export type MusterEvent = Static<typeof MusterEvent>;

/** The events a list of type filters lets through, as a type. */
export type EventOfFilter<F extends string> = F extends `${infer Kind}.*`
  ? Extract<MusterEvent, { type: `${Kind}.${string}` }>
  : Extract<MusterEvent, { type: F }>;

export const EventsQuery = Type.Object(
  {
    type: Type.Optional(
      Type.Array(EventTypeFilterSchema, {
        maxItems: EVENT_TYPES.length + 2,
        description: "repeatable: type=host.online&type=host.offline; host.* or command.* for a whole kind",
      }),
    ),
    host_id: Type.Optional(IdSchema("host")),
    tag: Type.Optional(Type.String({ pattern: TAG_PATTERN, description: "only events of hosts carrying this tag when the event happened (before or after, for host.tags_changed)" })),
    after: Type.Optional(Type.String({ pattern: EVENT_ID_PATTERN, description: "resume after this event ID (the Last-Event-ID header wins when both are sent)" })),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuery>;

/** The header a reconnecting client names its last event in (EventSource sends it by itself). */
export const LAST_EVENT_ID_HEADER = "last-event-id";

/** How often the stream sends a comment when it has nothing else to send, so proxies and clients know it is alive. */
export const EVENTS_KEEPALIVE_S = 15;
