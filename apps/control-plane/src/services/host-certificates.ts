import { and, eq, gt, isNull, ne } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostCertificates, hosts, type HostRow } from "../db/schema/index.js";
import type { x509 } from "../pki/x509.js";
import type { ServiceDeps } from "./context.js";
import { recordHostEvents } from "./host-events.js";

export interface HostCertificateFields {
  certificate: string;
  certificate_expires_at: string;
  ca_certificate: string;
}

/**
 * Certifies a host's key (from its checked CSR) with the active CA, records
 * the certificate (and its CA) so it can be revoked, and notes the newest one
 * on the host row. The answer carries every trusted CA: during a CA rotation,
 * that is how an agent learns the new CA. The certificate this one replaces
 * stays trusted (the agent may still serve it until it swaps); older ones are
 * superseded: no longer trusted by the probe, and left off the revocation
 * list, which therefore grows with deletions and re-registrations, never with
 * renewals. Callers hold the host's row lock.
 */
export async function issueHostCertificate(
  tx: Tx,
  deps: ServiceDeps,
  host: HostRow,
  publicKey: x509.PublicKey,
): Promise<{ host: HostRow; fields: HostCertificateFields }> {
  const now = deps.clock.now();
  const ca = deps.ca.active;
  const issued = await ca.issueHostCertificate({
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
    caId: ca.id,
    createdAt: now,
    expiresAt: issued.expiresAt,
  });
  await supersedeOlderCertificates(tx, host, issued.serial, now);
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
      ca_certificate: deps.ca.bundlePem,
    },
  };
}

/**
 * Leaves two of the host's certificates trusted: the one just issued and the
 * one the host row names (the newest before it, or the one a probe saw it
 * serve); the rest are superseded. The row, locked by the caller, decides
 * rather than creation times, which renewals in one millisecond share.
 */
async function supersedeOlderCertificates(tx: Tx, host: HostRow, issuedSerial: string, now: Date): Promise<void> {
  await tx
    .update(hostCertificates)
    .set({ supersededAt: now })
    .where(
      and(
        liveCertificatesOf(host.id, now),
        ne(hostCertificates.serial, issuedSerial),
        host.certFingerprint === null ? undefined : ne(hostCertificates.fingerprint, host.certFingerprint),
      ),
    );
}

function liveCertificatesOf(hostId: string, now: Date) {
  return and(
    eq(hostCertificates.hostId, hostId),
    isNull(hostCertificates.revokedAt),
    isNull(hostCertificates.supersededAt),
    gt(hostCertificates.expiresAt, now),
  );
}

/**
 * Revokes the host's live certificates (deletion, re-registration, a stolen
 * refresh token): at most two, put on the revocation list, which the control
 * plane checks when it calls agents and agents check when called. Returns how
 * many: when any, the caller asks for a new list once its transaction commits
 * (`deps.revocationLists.changed()`).
 */
export async function revokeHostCertificates(tx: Tx, deps: ServiceDeps, hostId: string): Promise<number> {
  const now = deps.clock.now();
  const revoked = await tx
    .update(hostCertificates)
    .set({ revokedAt: now })
    .where(liveCertificatesOf(hostId, now))
    .returning({ serial: hostCertificates.serial });
  await tx.update(hosts).set({ certFingerprint: null, certExpiresAt: null, mtlsEnabled: false }).where(eq(hosts.id, hostId));
  return revoked.length;
}
