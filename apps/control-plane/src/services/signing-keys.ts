import type { SigningKeys } from "@muster/contract";
import { and, desc, isNotNull, isNull, lte } from "drizzle-orm";
import { HOST_TOKEN_ALGORITHM } from "../auth/host-tokens.js";
import type { Db } from "../db/client.js";
import { signingKeys } from "../db/schema/index.js";
import type { RandomBytes } from "../lib/clock.js";
import { newId } from "../lib/ids.js";
import { sealedContext, type Sealer } from "../secrets/sealer.js";
import { requireAdmin, type Actor } from "./actor.js";
import { recordAudit, SYSTEM_ACTOR } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";
import { announceKeyringChange, KEYRING_RELOAD_MS, lockKeyring } from "./keyring.js";

const SECRET_BYTES = 32;

function newSigningKey(sealer: Sealer, random: RandomBytes, now: Date) {
  const kid = newId(random, "signingKey");
  const { kekId, sealed } = sealer.seal(random(SECRET_BYTES), sealedContext.signingKey(kid));
  return { kid, algorithm: HOST_TOKEN_ALGORITHM, sealedSecret: sealed, kekId, createdAt: now };
}

/** Makes the first signing key of an empty database (start-up, one process at a time). */
export async function ensureSigningKey(db: Db, sealer: Sealer, random: RandomBytes, now: Date): Promise<void> {
  const [any] = await db.select({ kid: signingKeys.kid }).from(signingKeys).limit(1);
  if (!any) await db.insert(signingKeys).values(newSigningKey(sealer, random, now)).onConflictDoNothing();
}

/**
 * Rotates the host-token signing key (admin): a new key signs from now on, in
 * every process (announced; each reloads), and the earlier ones keep
 * verifying the tokens they signed until those have expired: the host-token
 * lifetime, the clock leeway, and the longest a process may go on signing
 * with the old key before it reloads.
 */
export async function rotateSigningKey(deps: ServiceDeps, actor: Actor): Promise<SigningKeys> {
  requireAdmin(actor);
  await rotate(deps, actor);
  return deps.hostTokens.list();
}

/**
 * The automatic rotation (MUSTER_SIGNING_KEY_ROTATE_DAYS): rotates only if
 * the current key was made before `olderThan`, so of several processes that
 * find it due, one rotates. True when this call rotated.
 */
export async function rotateSigningKeyIfOlder(deps: ServiceDeps, olderThan: Date): Promise<boolean> {
  return rotate(deps, null, olderThan);
}

async function rotate(deps: ServiceDeps, actor: Actor | null, olderThan?: Date): Promise<boolean> {
  const now = deps.clock.now();
  const rotated = await withTransaction(deps.db, async (tx) => {
    await lockKeyring(tx);
    const [current] = await tx.select().from(signingKeys).where(isNull(signingKeys.retiresAt)).orderBy(desc(signingKeys.createdAt));
    if (olderThan && current && current.createdAt > olderThan) return null;
    const retiresAt = new Date(now.getTime() + (deps.config.hostTokenTtlS + deps.config.clockLeewayS) * 1000 + KEYRING_RELOAD_MS);
    await tx.update(signingKeys).set({ retiresAt }).where(isNull(signingKeys.retiresAt));
    const next = newSigningKey(deps.sealer, deps.random, now);
    await tx.insert(signingKeys).values(next);
    await recordAudit(tx, deps, [
      {
        actor: actor?.userId ?? SYSTEM_ACTOR,
        action: "signing_key.rotated",
        targetType: "signing_key",
        targetId: next.kid,
        teamId: null,
        metadata: { previous_kid: current?.kid ?? null, previous_retires_at: retiresAt.toISOString(), automatic: actor === null },
      },
    ]);
    return next.kid;
  });
  if (rotated === null) return false;
  deps.logger.info({ kid: rotated, automatic: actor === null }, "host-token signing key rotated; earlier keys verify until their tokens expire");
  await announceKeyringChange(deps, "signing-keys");
  await deps.hostTokens.reload();
  return true;
}

/** Deletes keys whose tokens have all expired: their sealed secrets leave the database. */
export async function deleteRetiredSigningKeys(db: Db, now: Date): Promise<void> {
  await db.delete(signingKeys).where(and(isNotNull(signingKeys.retiresAt), lte(signingKeys.retiresAt, now)));
}
