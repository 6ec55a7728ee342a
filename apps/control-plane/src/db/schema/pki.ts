import { sql } from "drizzle-orm";
import { index, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, optionalTime } from "./columns.js";
import { hosts } from "./hosts.js";

/** The control plane's CA when it generated its own (one row); a CA given as files is not stored. */
export const certificateAuthority = pgTable("certificate_authority", {
  id: text("id").primaryKey(),
  certificate: text("certificate").notNull(),
  /** PKCS#8 PEM; kept like the JWT signing keys, readable only to the control plane's database role. */
  privateKey: text("private_key").notNull(),
  createdAt: createdAt(),
});

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
    createdAt: createdAt(),
    expiresAt: optionalTime("expires_at").notNull(),
    revokedAt: optionalTime("revoked_at"),
    supersededAt: optionalTime("superseded_at"),
  },
  (t) => [
    index("host_certificates_host_idx").on(t.hostId),
    index("host_certificates_revoked_idx").on(t.revokedAt, t.expiresAt),
    // The revocation list is read in pages by serial.
    index("host_certificates_crl_idx").on(t.serial).where(sql`${t.revokedAt} is not null`),
  ],
);

export type HostCertificateRow = typeof hostCertificates.$inferSelect;
