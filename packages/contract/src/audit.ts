import { Type, type Static } from "@sinclair/typebox";
import { Nullable, PageQuery, Timestamp } from "./common.js";
import { ANY_ID_PATTERN, IdSchema } from "./ids.js";

export const AUDIT_ACTIONS = [
  "host.created",
  "host.registered",
  "host.online",
  "host.offline",
  "host.deleted",
  "host.token_regenerated",
  "host.tag_added",
  "host.tag_removed",
  "host.refreshed",
  "host.refresh_reused",
  "host.command_sent",
  "user.created",
  "team.created",
  "member.added",
  "member.removed",
  "api_key.created",
  "api_key.revoked",
  "signing_key.rotated",
  "ca.rotation_started",
  "ca.rotation_completed",
  "secret_key.sealed",
  "secret_key.rotated",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AuditEntry = Type.Object(
  {
    id: IdSchema("audit"),
    actor: Type.String({ description: "usr-…, host-… or \"system\"" }),
    action: Type.String({ description: "dotted name, e.g. host.created" }),
    target_type: Type.String(),
    target_id: Type.String(),
    team_id: Nullable(IdSchema("team")),
    created_at: Timestamp,
    metadata: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: "AuditEntry" },
);
export type AuditEntry = Static<typeof AuditEntry>;

export const ListAuditQuery = Type.Object(
  {
    ...PageQuery,
    target_id: Type.Optional(Type.String({ pattern: ANY_ID_PATTERN, description: "any resource ID (host-…, usr-…, …)" })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z_]+(\\.[a-z_]+)+$" })),
  },
  { additionalProperties: false },
);
export type ListAuditQuery = Static<typeof ListAuditQuery>;
