import { bigint, boolean, index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import type { HeartbeatMetrics, HostProbe } from "@muster/contract";
import { createdAt, id, optionalTime } from "./columns.js";
import { teams, users } from "./users.js";

export const hosts = pgTable(
  "hosts",
  {
    id: id(),
    type: text("type", { enum: ["regular", "byoc"] }).notNull(),
    teamId: text("team_id").references(() => teams.id),
    provider: text("provider"),
    availabilityZone: text("availability_zone"),
    arch: text("arch"),
    cpuCores: integer("cpu_cores"),
    memoryMb: integer("memory_mb"),
    diskGb: integer("disk_gb"),
    address: text("address"),
    hostname: text("hostname"),
    os: text("os"),
    agentVersion: text("agent_version"),
    protocolVersion: integer("protocol_version"),
    status: text("status", { enum: ["pending", "online", "offline"] }).notNull(),
    metrics: jsonb("metrics").$type<HeartbeatMetrics>(),
    lastHeartbeatAt: optionalTime("last_heartbeat_at"),
    clockSkewMs: bigint("clock_skew_ms", { mode: "number" }),
    registeredAt: optionalTime("registered_at"),
    /** The live credential family; replacing it kills every host token and refresh token issued before. */
    credentialFamily: text("credential_family"),
    /** SHA-256 of the host's newest certificate (hex), and when it expires. */
    certFingerprint: text("cert_fingerprint"),
    certExpiresAt: optionalTime("cert_expires_at"),
    /** Whether the last probe of the agent's mTLS endpoint succeeded. */
    mtlsEnabled: boolean("mtls_enabled").notNull().default(false),
    /** The last probe's answer, for everyone who may read the host (only owners may probe). */
    lastProbe: jsonb("last_probe").$type<HostProbe>(),
    createdBy: text("created_by").notNull().references(() => users.id),
    createdAt: createdAt(),
    updatedAt: optionalTime("updated_at").notNull(),
    deletedAt: optionalTime("deleted_at"),
  },
  (t) => [
    index("hosts_team_idx").on(t.teamId, t.createdAt),
    index("hosts_created_idx").on(t.createdAt, t.id),
    index("hosts_status_heartbeat_idx").on(t.status, t.lastHeartbeatAt),
  ],
);

export const hostTags = pgTable(
  "host_tags",
  {
    hostId: text("host_id").notNull().references(() => hosts.id),
    tag: text("tag").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.hostId, t.tag] }), index("host_tags_tag_idx").on(t.tag)],
);

/** The audit row of every registration token; the live token itself sits in the KV store with its TTL. */
export const hostRegistrationTokens = pgTable(
  "host_registration_tokens",
  {
    id: id(),
    hostId: text("host_id").notNull().references(() => hosts.id),
    tokenHash: text("token_hash").notNull().unique(),
    createdBy: text("created_by").notNull().references(() => users.id),
    createdAt: createdAt(),
    expiresAt: optionalTime("expires_at").notNull(),
    usedAt: optionalTime("used_at"),
    usedFromAddress: text("used_from_address"),
    supersededAt: optionalTime("superseded_at"),
  },
  (t) => [index("host_registration_tokens_host_idx").on(t.hostId)],
);

export const hostRefreshTokens = pgTable(
  "host_refresh_tokens",
  {
    id: id(),
    hostId: text("host_id").notNull().references(() => hosts.id),
    family: text("family").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    /** SPKI (base64) of the certificate key issued with this token; refreshing then needs a proof signed by it. */
    boundKey: text("bound_key"),
    createdAt: createdAt(),
    expiresAt: optionalTime("expires_at").notNull(),
    usedAt: optionalTime("used_at"),
    revokedAt: optionalTime("revoked_at"),
  },
  (t) => [index("host_refresh_tokens_host_idx").on(t.hostId)],
);

export type HostRow = typeof hosts.$inferSelect;
