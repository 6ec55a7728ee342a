import { Type, type Static } from "@sinclair/typebox";
import { Body, Nullable, PageQuery, Timestamp } from "./common.js";
import { IdSchema } from "./ids.js";

export const COMMAND_TYPE_PATTERN = "^[a-z][a-z0-9_.:-]{0,63}$";

/** Built into every agent; any other type goes to the embedding daemon's handler. */
export const BUILTIN_COMMANDS = ["ping", "refresh_credentials"] as const;

export const CommandStatus = Type.Union([
  Type.Literal("queued"),
  Type.Literal("delivered"),
  Type.Literal("succeeded"),
  Type.Literal("failed"),
  Type.Literal("expired"),
]);
export type CommandStatus = Static<typeof CommandStatus>;

/** A command ends in one of these; the others can still change. */
export const TERMINAL_COMMAND_STATUSES: readonly CommandStatus[] = ["succeeded", "failed", "expired"];

/**
 * The error of a command the agent received (it acknowledged it) but whose
 * result did not reach the control plane before `expires_at`: it is `failed`,
 * not `expired`, because it may well have run. A result that arrives later
 * replaces it.
 */
export const RESULT_NOT_RECEIVED = "result not received";

export const COMMAND_TIMEOUT_DEFAULT_S = 300;
export const COMMAND_TIMEOUT_MAX_S = 7 * 24 * 3600;

/** A command's arguments: a JSON object, handed to the agent's handler as is. */
export const CommandPayload = Type.Record(Type.String(), Type.Unknown(), { description: "a JSON object, handed to the handler as is" });
export type CommandPayload = Static<typeof CommandPayload>;

export const SendCommandBody = Body({
  type: Type.String({ pattern: COMMAND_TYPE_PATTERN, description: "ping, refresh_credentials, or a type the host's daemon handles" }),
  payload: Type.Optional(CommandPayload),
  timeout_s: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: COMMAND_TIMEOUT_MAX_S,
      default: COMMAND_TIMEOUT_DEFAULT_S,
      description: "seconds from now by which the agent must have received the command (else `expired`) and reported its result (else `failed`: result not received)",
    }),
  ),
});
export type SendCommandBody = Static<typeof SendCommandBody>;

export const Command = Type.Object(
  {
    id: IdSchema("command"),
    host_id: IdSchema("host"),
    type: Type.String(),
    payload: Nullable(CommandPayload),
    status: CommandStatus,
    timeout_s: Type.Integer(),
    result: Type.Unknown({ description: "what the handler returned (any JSON value); null until the command succeeds" }),
    error: Nullable(Type.String()),
    created_by: Type.String({ description: "ID of the user who sent the command" }),
    created_at: Timestamp,
    delivered_at: Nullable(Timestamp),
    completed_at: Nullable(Timestamp),
    expires_at: Timestamp,
  },
  { $id: "Command" },
);
export type Command = Static<typeof Command>;

export const CommandParams = Type.Object({ id: IdSchema("host"), command_id: IdSchema("command") });


export const ListCommandsQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(CommandStatus) },
  { additionalProperties: false },
);
export type ListCommandsQuery = Static<typeof ListCommandsQuery>;

/**
 * How a command ended on the host: `result` (any JSON) for success, `error` (a
 * sentence) for failure. The same fields travel in the channel's `result`
 * message and in the body of `POST /v1/hosts/{id}/commands/{command_id}/result`.
 */
export const commandOutcomeFields = {
  ok: Type.Boolean(),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String({ maxLength: 4096 })),
};

export const CommandOutcome = Body(commandOutcomeFields);
export type CommandOutcome = Static<typeof CommandOutcome>;

/**
 * `POST /v1/hosts/{id}/commands` takes an `Idempotency-Key` header: a retry
 * with the same key (from the same API key, within IDEMPOTENCY_KEY_TTL_S) and
 * the same request gets the first answer again instead of a second command.
 */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
/** Set on an answer replayed for a repeated Idempotency-Key. */
export const IDEMPOTENT_REPLAYED_HEADER = "idempotent-replayed";
export const IDEMPOTENCY_KEY_TTL_S = 24 * 3600;

export const IdempotencyHeaders = Type.Object({
  [IDEMPOTENCY_KEY_HEADER]: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: "^[\\x20-\\x7e]+$",
      description: "any printable ASCII, e.g. a UUID; a retry with the same key and body gets the first answer for 24 h, with another body 409",
    }),
  ),
});
