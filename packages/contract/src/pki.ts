import { Type, type Static } from "@sinclair/typebox";
import { Nullable, Timestamp } from "./common.js";
import { IdSchema } from "./ids.js";

/** A PEM-encoded X.509 object (certificate, CSR or CRL). */
export const Pem = (label: string, maxLength: number, options: { description?: string } = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: `^-----BEGIN ${label}-----`, description: options.description ?? `PEM (${label})` });

/** Revoked certificates stay listed until they expire; 100,000 of them are ~5 MB of PEM. */
export const MAX_CRL_PEM = 32 * 1024 * 1024;

export const CertificateAuthorityInfo = Type.Object(
  {
    certificate: Pem("CERTIFICATE", 16_384, {
      description: "Every CA to trust, concatenated PEM: one, or two during a CA rotation (the new one first)",
    }),
    fingerprint_sha256: Type.String({ pattern: "^[0-9a-f]{64}$", description: "SHA-256 of the DER of the CA that signs now, hex" }),
    expires_at: Timestamp,
  },
  { $id: "CertificateAuthority" },
);
export type CertificateAuthorityInfo = Static<typeof CertificateAuthorityInfo>;

export const RevocationList = Type.Object(
  {
    crl: Pem("X509 CRL", MAX_CRL_PEM, {
      description: "Revoked host certificates that have not expired yet: one CRL per CA of GET /v1/ca, concatenated PEM in the same order",
    }),
    this_update: Timestamp,
    next_update: Timestamp,
  },
  { $id: "RevocationList" },
);
export type RevocationList = Static<typeof RevocationList>;

export const HostProbe = Type.Object(
  {
    host_id: IdSchema("host"),
    reachable: Type.Boolean({ description: "A TLS 1.3 handshake with the agent's mTLS endpoint both ways, and its identity call, succeeded" }),
    latency_ms: Nullable(Type.Number({ description: "Connect, handshake and identity call, end to end" })),
    tls_version: Nullable(Type.String()),
    certificate: Nullable(
      Type.Object({
        fingerprint_sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
        serial: Type.String(),
        expires_at: Timestamp,
      }),
    ),
    agent_version: Nullable(Type.String()),
    error: Nullable(
      Type.String({
        description:
          "Why the probe failed, one of: not registered, address not allowed, refused, timed out, unreachable, tls handshake failed, unexpected answer, certificate rejected: <which check> (not signed by this control plane's CA, expired, not yet valid, revoked, does not name this host, superseded by a newer certificate of this host)",
      }),
    ),
    probed_at: Timestamp,
  },
  { $id: "HostProbe" },
);
export type HostProbe = Static<typeof HostProbe>;
