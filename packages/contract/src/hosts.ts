import { Type, type Static } from "@sinclair/typebox";
import { Body, Label, Nullable, PageQuery, Timestamp } from "./common.js";
import { IdSchema } from "./ids.js";
import { HostProbe, MAX_CRL_PEM, Pem } from "./pki.js";

export const TAG_PATTERN = "^[a-z0-9][a-z0-9._:=-]{0,62}$";
export const MAX_TAGS_PER_HOST = 64;

export const Tag = Type.String({
  pattern: TAG_PATTERN,
  description: "1–63 of a-z 0-9 - _ . : =, starting with a letter or digit",
});

export const HostType = Type.Union([Type.Literal("regular"), Type.Literal("byoc")]);
export type HostType = Static<typeof HostType>;

export const HostStatus = Type.Union([Type.Literal("pending"), Type.Literal("online"), Type.Literal("offline")]);
export type HostStatus = Static<typeof HostStatus>;

/** Live figures an agent may attach to a heartbeat; the latest set is kept on the host. */
export const HeartbeatMetrics = Body({
  cpu_percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  memory_used_mb: Type.Optional(Type.Integer({ minimum: 0 })),
  disk_used_gb: Type.Optional(Type.Integer({ minimum: 0 })),
  load_1m: Type.Optional(Type.Number({ minimum: 0 })),
  uptime_s: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type HeartbeatMetrics = Static<typeof HeartbeatMetrics>;

export const Host = Type.Object(
  {
    id: IdSchema("host"),
    type: HostType,
    team_id: Nullable(IdSchema("team")),
    provider: Nullable(Type.String()),
    availability_zone: Nullable(Type.String()),
    arch: Nullable(Type.String({ description: "Go's GOARCH name: amd64, arm64, …" })),
    cpu_cores: Nullable(Type.Integer()),
    memory_mb: Nullable(Type.Integer()),
    disk_gb: Nullable(Type.Integer()),
    address: Nullable(Type.String()),
    hostname: Nullable(Type.String()),
    os: Nullable(Type.String()),
    agent_version: Nullable(Type.String()),
    protocol_version: Nullable(Type.Integer({ description: "the agent channel protocol the host last spoke (register header or channel hello)" })),
    status: HostStatus,
    tags: Type.Array(Tag),
    metrics: Nullable(HeartbeatMetrics),
    last_heartbeat_at: Nullable(Timestamp),
    clock_skew_ms: Nullable(
      Type.Integer({ description: "the host's clock minus the control plane's at its last measured heartbeat, in ms (positive: the host is ahead)" }),
    ),
    registered_at: Nullable(Timestamp),
    cert_fingerprint: Nullable(Type.String({ description: "SHA-256 (hex) of the newest certificate issued to the host" })),
    cert_expires_at: Nullable(Timestamp),
    mtls_enabled: Type.Boolean({ description: "The last probe of the agent's mTLS endpoint succeeded" }),
    /** The last probe's answer: owners probe, everyone who may read the host reads it. */
    last_probe: Nullable(HostProbe),
    created_by: Type.String({ description: "ID of the user who created the host" }),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { $id: "Host" },
);
export type Host = Static<typeof Host>;

export const CreateHostBody = Body({
  type: HostType,
  team_id: Type.Optional(IdSchema("team")),
  provider: Type.Optional(Label(100)),
  availability_zone: Type.Optional(Label(100)),
  tags: Type.Optional(Type.Array(Tag, { maxItems: MAX_TAGS_PER_HOST, uniqueItems: true })),
});
export type CreateHostBody = Static<typeof CreateHostBody>;

export const HostWithRegistrationToken = Type.Object({
  host: Host,
  registration_token: Type.String({ description: "64 hex characters; valid 1 hour; one use. Shown once." }),
  registration_token_expires_at: Timestamp,
});
export type HostWithRegistrationToken = Static<typeof HostWithRegistrationToken>;

export const ListHostsQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(HostStatus),
    type: Type.Optional(HostType),
    tag: Type.Optional(Tag),
    team_id: Type.Optional(IdSchema("team")),
    arch: Type.Optional(Label(32, "amd64, arm64, … (or another name of the same architecture, e.g. x86_64, aarch64)")),
    hostname: Type.Optional(Label(255, "hosts whose hostname starts with this, letter case aside")),
  },
  { additionalProperties: false },
);
export type ListHostsQuery = Static<typeof ListHostsQuery>;

export const HostParams = Type.Object({ id: IdSchema("host") });
export const HostTagParams = Type.Object({ id: IdSchema("host"), tag: Tag });

export const AddTagBody = Body({ tag: Tag });
export type AddTagBody = Static<typeof AddTagBody>;

export const TagList = Type.Array(Tag);

function HostCsr() {
  return Pem("CERTIFICATE REQUEST", 8192, {
    description:
      "PKCS#10 CSR for the host's own ECDSA P-256 or Ed25519 key, naming nothing (the control plane sets the names); the response then carries the host's certificate",
  });
}

export const RegisterHostBody = Body({
  token: Type.String({ minLength: 1, maxLength: 256 }),
  address: Type.String({
    maxLength: 262,
    pattern: "^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
    description: "IP:PORT (or [IPv6]:PORT) where the host's agent listens",
  }),
  arch: Label(32, "Go's GOARCH name: amd64, arm64, … (x86_64, aarch64 and the other common names are accepted and stored as it)"),
  cpu_cores: Type.Integer({ minimum: 1, maximum: 65536 }),
  memory_mb: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 }),
  disk_gb: Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 }),
  hostname: Type.Optional(Label(255)),
  os: Type.Optional(Label(255)),
  agent_version: Type.Optional(Label(64)),
  machine_id: Type.Optional(
    Type.String({
      pattern: "^[A-Za-z0-9._:-]{1,128}$",
      description:
        "A stable identifier of the machine (the SDK agent sends an app-specific SHA-256 of /etc/machine-id). A registration retried within 5 minutes by the same machine (same machine_id, or same specs when absent, and same CSR key) gets the credentials already issued back instead of 401. Never stored.",
    }),
  ),
  csr: Type.Optional(HostCsr()),
});
export type RegisterHostBody = Static<typeof RegisterHostBody>;

export const RefreshBody = Body({
  refresh_token: Type.String({ minLength: 1, maxLength: 256 }),
  csr: Type.Optional(HostCsr()),
  proof: Type.Optional(
    Type.String({
      maxLength: 2048,
      pattern: "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
      description:
        "Required when the refresh token was issued with a certificate: a compact JWS (typ muster-refresh-proof+jws, ES256 or EdDSA) with payload {\"ath\": base64url(SHA-256(refresh_token))}, signed with that certificate's key",
    }),
  ),
});
export type RefreshBody = Static<typeof RefreshBody>;

export const HostCredentials = Type.Object({
  host: Host,
  token: Type.String({ description: "Host JWT; send as X-Host-Token." }),
  token_expires_at: Timestamp,
  refresh_token: Type.String({ description: "Opaque; one use; rotate with POST /v1/hosts/auth/refresh." }),
  refresh_token_expires_at: Timestamp,
  heartbeat_interval_s: Type.Integer({ minimum: 1 }),
  server_certificate_pin: Type.Optional(
    Type.String({
      pattern: "^sha256/[A-Za-z0-9+/]{43}=$",
      description: "Present when the control plane serves TLS itself: the SHA-256 of its certificate's public key (SPKI), base64. Agents refuse a certificate with another key afterwards.",
    }),
  ),
  certificate: Type.Optional(Pem("CERTIFICATE", 16_384, { description: "The host's client+server certificate; only when the request carried a CSR" })),
  certificate_expires_at: Type.Optional(Timestamp),
  ca_certificate: Type.Optional(
    Pem("CERTIFICATE", 16_384, {
      description: "Every CA to trust, concatenated PEM: the one that signed the certificate, and during a CA rotation the other one too (also GET /v1/ca)",
    }),
  ),
  crl: Type.Optional(
    Pem("X509 CRL", MAX_CRL_PEM, {
      description: "The revocation list of each CA in ca_certificate as of now, concatenated PEM in the same order (also GET /v1/ca/crl); the agent's endpoint checks them",
    }),
  ),
});
export type HostCredentials = Static<typeof HostCredentials>;
