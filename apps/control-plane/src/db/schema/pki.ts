import { sql } from "drizzle-orm";
import { index, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, optionalTime } from "./columns.js";
import { hosts } from "./hosts.js";

/**
 * The control plane's CA when it makes its own; a CA given as files is not
 * stored. One `active` row (it signs), and during a rotation the `previous`
 * one (still trusted until the rotation completes).
 */
export const certificateAuthority = pgTable(
  "certificate_authority",
  {
    id: text("id").primaryKey(),
    certificate: text("certificate").notNull(),
    /** How builds before sealing kept the key: PKCS#8 PEM in plain text. Sealed and cleared at the first start with a key-encryption key. */
    privateKey: text("private_key"),
    /** The PKCS#8 key sealed (AES-256-GCM) under the key-encryption key `kek_id`, which the database never holds. */
    sealedPrivateKey: text("sealed_private_key"),
    kekId: text("kek_id"),
    state: text("state").$type<"active" | "previous">().notNull().default("active"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("certificate_authority_state_idx").on(t.state)],
);

export type CertificateAuthorityRow = typeof certificateAuthority.$inferSelect;

/**
 * Every certificate issued to a host, so deletion or re-registration can revoke
 * them (the CRL lists revoked ones); a renewal supersedes all but the newest
 * two (no longer trusted, not listed).
 */
export const hostCertificates = pgTable(
  "host_certificates",
  {
    serial: text("serial").primaryKey(),
    hostId: text("host_id").notNull().references(() => hosts.id),
    fingerprint: text("fingerprint").notNull(),
    /** The CA that issued it; certificates from before CA rotation existed are the first CA's, `ca`. */
    caId: text("ca_id").notNull().default("ca"),
    createdAt: createdAt(),
    expiresAt: optionalTime("expires_at").notNull(),
    revokedAt: optionalTime("revoked_at"),
    supersededAt: optionalTime("superseded_at"),
  },
  (t) => [
    index("host_certificates_host_idx").on(t.hostId),
    index("host_certificates_revoked_idx").on(t.revokedAt, t.expiresAt),
    // Each CA's revocation list is read in pages by serial.
    index("host_certificates_crl_idx").on(t.caId, t.serial).where(sql`${t.revokedAt} is not null`),
  ],
);

export type HostCertificateRow = typeof hostCertificates.$inferSelect;
