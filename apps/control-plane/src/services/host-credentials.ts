import type { HostCredentials, RefreshBody, RegisterHostBody } from "@muster/contract";
import { canonicalArch } from "@muster/contract";
import { and, eq, gt, isNull } from "drizzle-orm";
import { hostRefreshTokens, hostRegistrationTokens, hosts, type HostRow } from "../db/schema/index.js";
import { DomainError, invalid, unauthorized } from "../errors.js";
import { AddressRefused } from "../net/address-policy.js";
import { newId } from "../lib/ids.js";
import { hashSecret, newFamily, newRefreshToken } from "../lib/secrets.js";
import { checkCsr } from "../pki/csr.js";
import { verifyRefreshProof } from "../pki/refresh-proof.js";
import type { x509 } from "../pki/x509.js";
import { recordAudit } from "./audit.js";
import type { Tx } from "../db/client.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { publishCredentialState } from "./credential-state.js";
import { issueHostCertificate, revokeHostCertificates } from "./host-certificates.js";
import { recordHostEvents } from "./host-events.js";
import { hostViews } from "./host-views.js";
import { registrationTokenKey } from "./kv-keys.js";
import { enforceHostRefreshLimit, enforceRateLimits } from "./rate-limit.js";
import { machineFingerprint, RegistrationReplay, type ReplayRecord } from "./registration-replay.js";

// One message for every refused token, whatever the reason, so a caller learns nothing from it.
const REGISTRATION_REFUSED =
  "registration token is invalid, already used or expired; ask an operator for a new one (POST /v1/hosts/{id}/token)";
// A refresh token outlived by a long offline spell ends here too: say what to do, not just what went wrong.
const REFRESH_REFUSED =
  "refresh token is invalid, expired or revoked; the host must register again with a new registration token: an operator issues one (`muster hosts token <host_id>`, or POST /v1/hosts/{id}/token) and the agent registers with it (`muster-agent --register <token> --address <ip:port>`)";

interface TokenPointer {
  hostId: string;
  tokenId: string;
}

/**
 * Trades a one-time registration token for credentials. A request with a CSR
 * that finds the token claimed by the same machine with the same CSR (see
 * registration-replay.ts) is a retry: it waits for the answer and gets the one
 * issued (409 if it is not made within seconds). Without a CSR nothing proves
 * the asker is the machine that registered, so a repeat is a used token. Any other request finds the token by the KV store's
 * atomic get-and-delete or, when the KV store lacks it (restarted without its data,
 * the embedded in-process store after any restart, a process killed between
 * the get-and-delete and the commit), by the row with the token's hash. The
 * database row decides: its conditional update picks exactly one winner and
 * refuses a token that expired, was superseded or was already used, so no
 * token is burnt unused and none is used twice.
 */
export async function registerHost(deps: ServiceDeps, body: RegisterHostBody, fromAddress: string | null, protocolVersion: number | null) {
  const tokenHash = hashSecret(body.token);
  await enforceRateLimits(deps, "register", { address: fromAddress, tokenHash });
  // A bad CSR or address is bad input: refuse it before the token is spent.
  const publicKey = body.csr === undefined ? null : await checkCsr(body.csr);
  checkAgentAddress(deps, body.address);
  const replay = body.csr === undefined ? null : new RegistrationReplay(deps, body.token, tokenHash, machineFingerprint(body, body.csr));
  const earlier = await replay?.claim();
  if (earlier) return answerRetry(deps, earlier);

  const kvKey = registrationTokenKey(tokenHash);
  const pointer = await deps.kv.getDel(kvKey);
  const found = pointer === null ? await storedTokenPointer(deps, tokenHash) : (JSON.parse(pointer) as TokenPointer);
  if (found === null) {
    await replay?.release();
    throw unauthorized(REGISTRATION_REFUSED);
  }
  const { hostId, tokenId } = found;

  let credentials: HostCredentials;
  let revoked = 0;
  try {
    credentials = await withTransaction(deps.db, async (tx) => {
      const now = deps.clock.now();
      const [used] = await tx
        .update(hostRegistrationTokens)
        .set({ usedAt: now, usedFromAddress: fromAddress })
        .where(
          and(
            eq(hostRegistrationTokens.id, tokenId),
            eq(hostRegistrationTokens.tokenHash, tokenHash),
            isNull(hostRegistrationTokens.usedAt),
            isNull(hostRegistrationTokens.supersededAt),
            gt(hostRegistrationTokens.expiresAt, now),
          ),
        )
        .returning({ hostId: hostRegistrationTokens.hostId });
      if (!used || used.hostId !== hostId) throw unauthorized(REGISTRATION_REFUSED);

      const [host] = await tx.select().from(hosts).where(and(eq(hosts.id, hostId), isNull(hosts.deletedAt))).for("update");
      if (!host) throw unauthorized(REGISTRATION_REFUSED);
      const reRegistration = host.registeredAt !== null;

      // Re-registration (re-install, wiped disk) replaces every earlier credential of the host.
      await tx
        .update(hostRefreshTokens)
        .set({ revokedAt: now })
        .where(and(eq(hostRefreshTokens.hostId, hostId), isNull(hostRefreshTokens.revokedAt)));
      revoked = await revokeHostCertificates(tx, deps, hostId);
      const family = newFamily(deps.random);
      const [updated] = await tx
        .update(hosts)
        .set({
          address: body.address,
          arch: canonicalArch(body.arch),
          cpuCores: body.cpu_cores,
          memoryMb: body.memory_mb,
          diskGb: body.disk_gb,
          hostname: body.hostname ?? null,
          os: body.os ?? null,
          agentVersion: body.agent_version ?? null,
          protocolVersion,
          registeredAt: now,
          credentialFamily: family,
          updatedAt: now,
        })
        .where(eq(hosts.id, hostId))
        .returning();
      await recordAudit(tx, deps, [
        {
          actor: hostId,
          action: "host.registered",
          targetType: "host",
          targetId: hostId,
          teamId: host.teamId,
          metadata: { address: body.address, re_registration: reRegistration, from: fromAddress },
        },
      ]);
      await recordHostEvents(tx, deps, "host.registered", [updated!]);
      return issueCredentials(tx, deps, updated!, family, publicKey);
    });
  } catch (error) {
    // A store failure must not burn the token: put it back for a retry. Refusals stay consumed.
    if (!(error instanceof DomainError) && pointer !== null) {
      await deps.kv.set(kvKey, pointer, { ttlMs: deps.config.registrationTokenTtlS * 1000, onlyIfAbsent: true }).catch(() => {});
    }
    await replay?.release();
    throw error;
  }
  if (revoked > 0) await deps.revocationLists.changed();
  await replay?.remember(credentials);
  return withRevocationList(deps, credentials);
}

/**
 * Adds the revocation list to credentials that carry a certificate. Taken
 * after the transaction: on the embedded database a first build, reading
 * outside the transaction, would wait for it.
 */
async function withRevocationList(deps: ServiceDeps, credentials: HostCredentials): Promise<HostCredentials> {
  if (credentials.certificate === undefined) return credentials;
  return { ...credentials, crl: (await deps.revocationLists.current()).pem };
}

/** The agent's address must be one the control plane may call (see net/address-policy.ts); refused before the token is spent. */
function checkAgentAddress(deps: ServiceDeps, address: string): void {
  try {
    deps.addresses.checkAddress(address);
  } catch (error) {
    if (error instanceof AddressRefused) throw invalid(`body field 'address': ${error.message}`);
    throw error;
  }
}

async function answerRetry(deps: ServiceDeps, earlier: ReplayRecord): Promise<HostCredentials> {
  if (earlier.state === "claimed") {
    throw new DomainError("conflict", "a registration with this token from this machine is still in progress; retry in a second", 1);
  }
  if (await stillLive(deps, earlier.credentials)) {
    deps.logger.info({ host_id: earlier.credentials.host.id }, "registration retried by the same machine: the credentials already issued are sent again");
    // The list is not kept with the answer (it can be megabytes): the retry gets the current one.
    return withRevocationList(deps, earlier.credentials);
  }
  throw unauthorized(REGISTRATION_REFUSED);
}

/**
 * Whether credentials are still the host's live ones: their refresh token
 * unused, unrevoked and of the host's current family. Once the agent has used
 * them, or the host was re-registered or deleted, sending them again would
 * only hand out a dead (or, if used, family-revoking) refresh token.
 */
async function stillLive(deps: ServiceDeps, credentials: HostCredentials): Promise<boolean> {
  const [live] = await deps.db
    .select({ id: hostRefreshTokens.id })
    .from(hostRefreshTokens)
    .innerJoin(hosts, eq(hosts.id, hostRefreshTokens.hostId))
    .where(
      and(
        eq(hostRefreshTokens.tokenHash, hashSecret(credentials.refresh_token)),
        isNull(hostRefreshTokens.usedAt),
        isNull(hostRefreshTokens.revokedAt),
        gt(hostRefreshTokens.expiresAt, deps.clock.now()),
        isNull(hosts.deletedAt),
        eq(hosts.credentialFamily, hostRefreshTokens.family),
      ),
    );
  return live !== undefined;
}

async function storedTokenPointer(deps: ServiceDeps, tokenHash: string): Promise<TokenPointer | null> {
  const [row] = await deps.db
    .select({ hostId: hostRegistrationTokens.hostId, tokenId: hostRegistrationTokens.id })
    .from(hostRegistrationTokens)
    .where(eq(hostRegistrationTokens.tokenHash, tokenHash));
  return row ?? null;
}

type RefreshOutcome = { ok: HostCredentials } | { refused: true } | { deleted: true };

// The caller holds a refresh token, a secret only the host's agent has: telling it the host is gone
// lets the agent wipe its credentials (SPEC §7) instead of asking an operator to re-register it.
const HOST_DELETED = "the host was deleted; its agent should remove its credentials";
const PROOF_REFUSED =
  "this refresh token is bound to the host's certificate key: send `proof`, a JWS over the token's thumbprint signed with that key";

/**
 * Rotates a refresh token. Each token works once; presenting one that was
 * already used means two parties hold it, so the whole family dies and the
 * host must register again.
 */
export async function refreshHostCredentials(deps: ServiceDeps, body: RefreshBody, fromAddress: string | null): Promise<HostCredentials> {
  const tokenHash = hashSecret(body.refresh_token);
  await enforceRateLimits(deps, "refresh", { address: fromAddress, tokenHash });
  const publicKey = body.csr === undefined ? null : await checkCsr(body.csr);
  await requireProofIfBound(deps, body, tokenHash);
  let revoked = 0;
  const outcome = await withTransaction(deps.db, async (tx): Promise<RefreshOutcome> => {
    const now = deps.clock.now();
    const [token] = await tx
      .update(hostRefreshTokens)
      .set({ usedAt: now })
      .where(
        and(
          eq(hostRefreshTokens.tokenHash, tokenHash),
          isNull(hostRefreshTokens.usedAt),
          isNull(hostRefreshTokens.revokedAt),
          gt(hostRefreshTokens.expiresAt, now),
        ),
      )
      .returning();
    if (!token) {
      const [known] = await tx
        .select({ deletedAt: hosts.deletedAt })
        .from(hostRefreshTokens)
        .innerJoin(hosts, eq(hosts.id, hostRefreshTokens.hostId))
        .where(eq(hostRefreshTokens.tokenHash, tokenHash));
      if (known?.deletedAt) return { deleted: true };
      revoked = await revokeFamilyOnReuse(tx, deps, tokenHash);
      return { refused: true };
    }
    const [host] = await tx.select().from(hosts).where(eq(hosts.id, token.hostId)).for("update");
    if (!host || host.deletedAt) return { deleted: true };
    if (host.credentialFamily !== token.family) return { refused: true };
    return { ok: await issueCredentials(tx, deps, host, token.family, publicKey) };
  });
  if (revoked > 0) await deps.revocationLists.changed();
  if ("deleted" in outcome) throw new DomainError("not_found", HOST_DELETED);
  if ("refused" in outcome) throw unauthorized(REFRESH_REFUSED);
  return withRevocationList(deps, outcome.ok);
}

/**
 * A live refresh token issued with a certificate works only with a proof of
 * the certificate's key (RFC 8705's certificate binding, carried in the body
 * because the API is not itself served over mTLS): a stolen refresh token is
 * useless without the key, which never leaves the host. Refused before the
 * token is spent, so the host can still use it. Spent tokens take the usual
 * path (reuse revokes the family).
 */
async function requireProofIfBound(deps: ServiceDeps, body: RefreshBody, tokenHash: string): Promise<void> {
  const [token] = await deps.db
    .select({ boundKey: hostRefreshTokens.boundKey, hostId: hostRefreshTokens.hostId })
    .from(hostRefreshTokens)
    .where(and(eq(hostRefreshTokens.tokenHash, tokenHash), isNull(hostRefreshTokens.usedAt), isNull(hostRefreshTokens.revokedAt)));
  if (!token) return;
  await enforceHostRefreshLimit(deps, token.hostId);
  if (!token.boundKey) return;
  if (body.proof === undefined || !(await verifyRefreshProof(body.proof, body.refresh_token, token.boundKey))) {
    throw unauthorized(PROOF_REFUSED);
  }
}

/** Revokes the family of a reused token; returns how many certificates that revoked. */
async function revokeFamilyOnReuse(tx: Tx, deps: ServiceDeps, tokenHash: string): Promise<number> {
  const [reused] = await tx.select().from(hostRefreshTokens).where(eq(hostRefreshTokens.tokenHash, tokenHash));
  if (!reused || reused.usedAt === null) return 0;
  const [host] = await tx.select().from(hosts).where(eq(hosts.id, reused.hostId)).for("update");
  if (!host || host.credentialFamily !== reused.family) return 0;
  const now = deps.clock.now();
  await tx
    .update(hostRefreshTokens)
    .set({ revokedAt: now })
    .where(and(eq(hostRefreshTokens.hostId, host.id), isNull(hostRefreshTokens.revokedAt)));
  const revoked = await revokeHostCertificates(tx, deps, host.id);
  const [withoutCredentials] = await tx.update(hosts).set({ credentialFamily: null, updatedAt: now }).where(eq(hosts.id, host.id)).returning();
  await publishCredentialState(deps.kv, host.id, { kind: "none" });
  await recordAudit(tx, deps, [
    {
      actor: host.id,
      action: "host.refresh_reused",
      targetType: "host",
      targetId: host.id,
      teamId: host.teamId,
      metadata: { refresh_token_id: reused.id, used_at: reused.usedAt.toISOString() },
    },
  ]);
  await recordHostEvents(tx, deps, "host.credentials_revoked", [withoutCredentials!]);
  deps.logger.warn({ host_id: host.id }, "refresh token reused: every credential of the host is revoked");
  return revoked;
}

/**
 * Mints a host JWT and a fresh refresh token of `family`, and publishes the
 * family as live; with a CSR's key, also the host's certificate.
 */
async function issueCredentials(
  tx: Tx,
  deps: ServiceDeps,
  row: HostRow,
  family: string,
  publicKey: x509.PublicKey | null,
): Promise<HostCredentials> {
  const certified = publicKey === null ? null : await issueHostCertificate(tx, deps, row, publicKey);
  const host = certified?.host ?? row;
  const now = deps.clock.now();
  const refreshToken = newRefreshToken(deps.random);
  const refreshExpiresAt = new Date(now.getTime() + deps.config.refreshTokenTtlS * 1000);
  await tx.insert(hostRefreshTokens).values({
    id: newId(deps.random, "hostRefreshToken"),
    hostId: host.id,
    family,
    tokenHash: hashSecret(refreshToken),
    boundKey: publicKey === null ? null : Buffer.from(publicKey.rawData).toString("base64"),
    createdAt: now,
    expiresAt: refreshExpiresAt,
  });
  const jwt = await deps.hostTokens.sign(host.id, family);
  await publishCredentialState(deps.kv, host.id, { kind: "live", family });
  const [view] = await hostViews(tx, deps.kv, [host]);
  return {
    host: view!,
    token: jwt.token,
    token_expires_at: jwt.expiresAt.toISOString(),
    refresh_token: refreshToken,
    refresh_token_expires_at: refreshExpiresAt.toISOString(),
    heartbeat_interval_s: deps.pacing.intervalS(host.id),
    ...(deps.config.serverCertificatePin ? { server_certificate_pin: deps.config.serverCertificatePin } : {}),
    ...certified?.fields,
  };
}
