import { eq } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostCertificates, hosts, type HostRow } from "../db/schema/index.js";
import type { x509 } from "../pki/x509.js";
import type { ServiceDeps } from "./context.js";

export interface HostCertificateFields {
  certificate: string;
  certificate_expires_at: string;
  ca_certificate: string;
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
  return {
    host: updated!,
    fields: { certificate: issued.pem, certificate_expires_at: issued.expiresAt.toISOString(), ca_certificate: deps.ca.certificatePem },
  };
}
