import { Type, type Static } from "@sinclair/typebox";
import { Body, Nullable, Timestamp } from "./common.js";
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
      description: "seconds from now after which an unfinished command expires, delivered or not",
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

