import type { CaStatus, CaSummary, RotateCaBody } from "@muster/contract";
import { and, count, eq, isNull, sql } from "drizzle-orm";
import { X509Certificate } from "node:crypto";
import { certificateAuthority, hostCertificates, hosts } from "../db/schema/index.js";
import { conflict } from "../errors.js";
import { newId } from "../lib/ids.js";
import { newCaRow } from "../pki/authorities.js";
import type { CertificateAuthority } from "../pki/ca.js";
import { requireAdmin, type Actor } from "./actor.js";
import { recordAudit } from "./audit.js";
import { withTransaction, type DbOrTx, type ServiceDeps } from "./context.js";
import { requireRefresh } from "./credential-renewal.js";
import { announceKeyringChange, lockKeyring } from "./keyring.js";

/** Hosts whose newest certificate (the one noted on the host) was issued by the CA `caId`. */
function onCa(caId: string) {
  return and(isNull(hosts.deletedAt), eq(hostCertificates.caId, caId));
}

function joinNewestCertificate() {
  return and(eq(hostCertificates.hostId, hosts.id), eq(hostCertificates.fingerprint, hosts.certFingerprint));
}

async function countOnCa(db: DbOrTx, caId: string): Promise<{ all: number; online: number }> {
  const [counted] = await db
    .select({ all: count(), online: sql<number>`count(*) filter (where ${hosts.status} = 'online')`.mapWith(Number) })
    .from(hosts)
    .innerJoin(hostCertificates, joinNewestCertificate())
    .where(onCa(caId));
  return counted ?? { all: 0, online: 0 };
}

function summary(ca: CertificateAuthority): CaSummary {
  return {
    id: ca.id,
    fingerprint_sha256: ca.fingerprint,
    created_at: ca.createdAt?.toISOString() ?? null,
    expires_at: ca.certificate.notAfter.toISOString(),
  };
}

async function statusOf(deps: ServiceDeps): Promise<CaStatus> {
  const { active, previous, source } = deps.ca;
  const pending = previous ? await countOnCa(deps.db, previous.id) : { all: 0, online: 0 };
  return {
    phase: previous ? "rotating" : "standby",
    source,
    active: summary(active),
    previous: previous ? summary(previous) : null,
    rotation_started_at: previous ? (active.createdAt?.toISOString() ?? null) : null,
    hosts_on_previous_ca: pending.all,
    online_hosts_on_previous_ca: pending.online,
  };
}

/** The rotation's phase and progress (admin). */
export async function caStatus(deps: ServiceDeps, actor: Actor): Promise<CaStatus> {
  requireAdmin(actor);
  return statusOf(deps);
}

/**
 * One step of a CA rotation (admin), after Teleport's phases at Muster's scale:
 * - `start`: a new CA becomes the active one (it signs every host certificate
 *   from now on) and the old one `previous`: both are trusted, and every
 *   register and refresh answer carries both, so agents pick up the new CA at
 *   their next refresh. The control plane calls each host with the client
 *   certificate of the CA that host trusts (see probe.ts).
 * - `complete`: the previous CA is retired (its sealed key leaves the
 *   database). Hosts still holding its certificates are made to refresh
 *   (credential-renewal.ts): an agent that was offline throughout re-enrols
 *   through its refresh token when it is back. Refused while online hosts
 *   still hold them, unless `force`: they would all refresh at once.
 * Each step is audited, its revocation lists signed once, and announced to
 * every control plane.
 */
export async function rotateCa(deps: ServiceDeps, actor: Actor, body: RotateCaBody): Promise<CaStatus> {
  requireAdmin(actor);
  if (deps.ca.source === "files") {
    throw conflict("the CA is given as files (MUSTER_CA_CERT_FILE / MUSTER_CA_KEY_FILE): rotate it by replacing the files and restarting");
  }
  if (body.action === "start") await startRotation(deps, actor);
  else await completeRotation(deps, actor, body.force === true);
  await deps.ca.reload();
  // The trusted CAs changed, so their revocation lists did: signed here once and shared before the other processes
  // reload (each takes the stored lists at its first use after the reload rather than signing them again).
  await deps.revocationLists.changed();
  await announceKeyringChange(deps, "ca");
  return statusOf(deps);
}

async function startRotation(deps: ServiceDeps, actor: Actor): Promise<void> {
  const now = deps.clock.now();
  await withTransaction(deps.db, async (tx) => {
    await lockKeyring(tx);
    const rows = await tx.select().from(certificateAuthority);
    const active = rows.find((row) => row.state === "active")!;
    const previous = rows.find((row) => row.state === "previous");
    if (previous) {
      throw conflict(`a CA rotation is already in progress (started ${active.createdAt.toISOString()}): complete it first`);
    }
    const next = await newCaRow(deps.sealer, deps.random, newId(deps.random, "certificateAuthority"), "active", now);
    await tx.update(certificateAuthority).set({ state: "previous" }).where(eq(certificateAuthority.id, active.id));
    await tx.insert(certificateAuthority).values(next);
    await recordAudit(tx, deps, [
      {
        actor: actor.userId,
        action: "ca.rotation_started",
        targetType: "certificate_authority",
        targetId: next.id,
        teamId: null,
        metadata: { fingerprint_sha256: fingerprintOf(next.certificate), previous_ca_id: active.id, previous_fingerprint_sha256: fingerprintOf(active.certificate) },
      },
    ]);
  });
  deps.logger.info({}, "CA rotation started: a new CA signs, both are trusted; agents pick up the new one at their next refresh");
}

async function completeRotation(deps: ServiceDeps, actor: Actor, force: boolean): Promise<void> {
  const renewed = await withTransaction(deps.db, async (tx) => {
    await lockKeyring(tx);
    const rows = await tx.select().from(certificateAuthority);
    const active = rows.find((row) => row.state === "active")!;
    const previous = rows.find((row) => row.state === "previous");
    if (!previous) throw conflict("no CA rotation is in progress: start one with {\"action\": \"start\"}");
    const pending = await tx.select({ id: hosts.id, status: hosts.status }).from(hosts).innerJoin(hostCertificates, joinNewestCertificate()).where(onCa(previous.id));
    const online = pending.filter((host) => host.status === "online").length;
    if (online > 0 && !force) {
      throw conflict(
        `${online} online host(s) still hold certificates of the previous CA; they pick up the new one at their next refresh ` +
          `(within ${Math.ceil((deps.config.hostTokenTtlS * 0.8) / 60)} min), or at once when sent the refresh_credentials command. ` +
          "Complete then, or now with \"force\": true (they are made to refresh at once)",
      );
    }
    const renewed = await requireRefresh(tx, deps, pending.map((host) => host.id));
    await tx.delete(certificateAuthority).where(eq(certificateAuthority.id, previous.id));
    await recordAudit(tx, deps, [
      {
        actor: actor.userId,
        action: "ca.rotation_completed",
        targetType: "certificate_authority",
        targetId: active.id,
        teamId: null,
        metadata: { retired_ca_id: previous.id, retired_fingerprint_sha256: fingerprintOf(previous.certificate), hosts_made_to_refresh: renewed.length, forced: force },
      },
    ]);
    return renewed;
  });
  deps.logger.info({ hosts_made_to_refresh: renewed.length }, "CA rotation completed: the previous CA is retired");
}

function fingerprintOf(certificatePem: string): string {
  return new X509Certificate(certificatePem).fingerprint256.replace(/:/g, "").toLowerCase();
}
