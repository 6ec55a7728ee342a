import { and, eq, gt, isNotNull, isNull } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostCertificates, hosts, type HostRow } from "../db/schema/index.js";
import type { x509 } from "../pki/x509.js";
import type { DbOrTx, ServiceDeps } from "./context.js";
import { recordHostEvents } from "./host-events.js";

export interface HostCertificateFields {
  certificate: string;
  certificate_expires_at: string;
  ca_certificate: string;
  crl: string;
}

/**
 * Certifies a host's key (from its checked CSR), records the certificate so it
 * can be revoked, and notes the newest one on the host row.
 */
export async function issueHostCertificate(
  tx: Tx,
  deps: ServiceDeps,
  host: HostRow,
  publicKey: x509.PublicKey,
): Promise<{ host: HostRow; fields: HostCertificateFields }> {
  const now = deps.clock.now();
  const issued = await deps.ca.issueHostCertificate({
    hostId: host.id,
    address: host.address ?? "",
    publicKey,
    now,
    ttlS: deps.config.hostCertTtlS,
    random: deps.random,
  });
  await tx.insert(hostCertificates).values({
    serial: issued.serial,
    hostId: host.id,
    fingerprint: issued.fingerprint,
    createdAt: now,
    expiresAt: issued.expiresAt,
  });
  const [updated] = await tx
    .update(hosts)
    .set({ certFingerprint: issued.fingerprint, certExpiresAt: issued.expiresAt, updatedAt: now })
    .where(eq(hosts.id, host.id))
    .returning();
  await recordHostEvents(tx, deps, "host.certificate_issued", [updated!]);
  return {
    host: updated!,
    fields: {
      certificate: issued.pem,
      certificate_expires_at: issued.expiresAt.toISOString(),
      ca_certificate: deps.ca.certificatePem,
      crl: (await revocationList(tx, deps)).crl,
    },
  };
}

/**
 * Revokes every unexpired certificate of the host (deletion, re-registration,
 * a stolen refresh token): from now on they are on the revocation list, which
 * the control plane checks when it calls agents and agents check when called.
 */
export async function revokeHostCertificates(tx: Tx, deps: ServiceDeps, hostId: string): Promise<void> {
  const now = deps.clock.now();
  await tx
    .update(hostCertificates)
    .set({ revokedAt: now })
    .where(and(eq(hostCertificates.hostId, hostId), isNull(hostCertificates.revokedAt), gt(hostCertificates.expiresAt, now)));
  await tx.update(hosts).set({ certFingerprint: null, certExpiresAt: null, mtlsEnabled: false }).where(eq(hosts.id, hostId));
}

/**
 * The CA's revocation list: revoked certificates that have not expired yet
 * (an expired one is refused anyway). Valid as long as a host certificate, so
 * an agent's copy, renewed with every refresh, never goes stale while it runs.
 */
export async function revocationList(db: DbOrTx, deps: ServiceDeps): Promise<{ crl: string; thisUpdate: Date; nextUpdate: Date }> {
  const now = deps.clock.now();
  const nextUpdate = new Date(now.getTime() + deps.config.hostCertTtlS * 1000);
  const revoked = await db
    .select({ serial: hostCertificates.serial, revokedAt: hostCertificates.revokedAt })
    .from(hostCertificates)
    .where(and(isNotNull(hostCertificates.revokedAt), gt(hostCertificates.expiresAt, now)));
  const crl = await deps.ca.revocationList(
    revoked.map((row) => ({ serial: row.serial, revokedAt: row.revokedAt! })),
    now,
    nextUpdate,
  );
  return { crl, thisUpdate: now, nextUpdate };
}
