import { createPrivateKey } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Db } from "../db/client.js";
import { certificateAuthority, signingKeys, webhooks } from "../db/schema/index.js";
import type { Clock, RandomBytes } from "../lib/clock.js";
import { recordAudit, SYSTEM_ACTOR } from "../services/audit.js";
import { withTransaction } from "../services/context.js";
import { sealedContext, SecretKeyError, unknownKey, type Sealer } from "./sealer.js";

interface AtRestDeps {
  db: Db;
  sealer: Sealer;
  clock: Clock;
  random: RandomBytes;
  logger: Logger;
}

interface StoredKey {
  table: "signing_keys" | "certificate_authority" | "webhooks";
  id: string;
  context: string;
  plaintext: Buffer | null;
  sealed: { kekId: string; sealed: string } | null;
}

/**
 * Brings every stored private key, and every webhook's signing secret, under
 * the current key-encryption key, at start (one process at a time): keys written in plain text by builds before
 * sealing are sealed and their plain text cleared; keys sealed under
 * MUSTER_SECRET_KEY_PREVIOUS are sealed again under MUSTER_SECRET_KEY. A key
 * sealed under a KEK this process was not given stops the start: it must
 * never carry on with a new CA or signing key in place of ones it cannot open.
 */
export async function sealKeysAtRest(deps: AtRestDeps): Promise<void> {
  const { db, sealer } = deps;
  const stored = await storedKeys(db);
  for (const key of stored) {
    if (key.sealed && !sealer.opens(key.sealed.kekId)) throw unknownKey(key.sealed.kekId, key.context, sealer);
    if (!key.sealed && !key.plaintext) throw new SecretKeyError(`${key.context} holds no key at all; restore the database from a backup`);
  }
  const plain = stored.filter((key) => key.plaintext !== null);
  const resealed = stored.filter((key) => key.plaintext === null && key.sealed!.kekId !== sealer.current.id);
  // Opening every key here proves the KEK right before anything is written under it.
  for (const key of stored) if (key.sealed) sealer.open(key.sealed, key.context);
  if (plain.length === 0 && resealed.length === 0) return;

  await withTransaction(db, async (tx) => {
    for (const key of [...plain, ...resealed]) {
      const material = key.plaintext ?? sealer.open(key.sealed!, key.context);
      const { kekId, sealed } = sealer.seal(material, key.context);
      if (key.table === "signing_keys") {
        await tx.update(signingKeys).set({ sealedSecret: sealed, kekId, secret: null }).where(eq(signingKeys.kid, key.id));
      } else if (key.table === "certificate_authority") {
        await tx.update(certificateAuthority).set({ sealedPrivateKey: sealed, kekId, privateKey: null }).where(eq(certificateAuthority.id, key.id));
      } else {
        await tx.update(webhooks).set({ sealedSecret: sealed, kekId }).where(eq(webhooks.id, key.id));
      }
    }
    const entries = [];
    if (plain.length > 0) entries.push({ action: "secret_key.sealed" as const, metadata: { keys: plain.map((key) => key.context) } });
    if (resealed.length > 0) {
      entries.push({ action: "secret_key.rotated" as const, metadata: { keys: resealed.map((key) => key.context), previous_kek_id: sealer.previous?.id ?? null } });
    }
    await recordAudit(tx, deps, entries.map((entry) => ({ ...entry, actor: SYSTEM_ACTOR, targetType: "secret_key" as const, targetId: sealer.current.id, teamId: null })));
  });

  if (plain.length > 0) {
    // Rewrites both tables, so the cleared plain text does not linger in dead rows of their files.
    await db.execute(sql`vacuum full signing_keys, certificate_authority`);
    deps.logger.warn(
      { sealed: plain.map((key) => key.context), kek_id: sealer.current.id },
      "sealed the private keys this database kept in plain text. Backups and WAL from before still hold them: rotate the signing key and the CA (docs/security.md)",
    );
  }
  if (resealed.length > 0) {
    deps.logger.info(
      { resealed: resealed.length, kek_id: sealer.current.id, previous_kek_id: sealer.previous?.id },
      "sealed the keys again under the new key-encryption key; MUSTER_SECRET_KEY_PREVIOUS can go once every control plane runs with the new key",
    );
  }
}

async function storedKeys(db: Db): Promise<StoredKey[]> {
  const [keys, cas, hooks] = await Promise.all([db.select().from(signingKeys), db.select().from(certificateAuthority), db.select().from(webhooks)]);
  return [
    ...keys.map((row) => ({
      table: "signing_keys" as const,
      id: row.kid,
      context: sealedContext.signingKey(row.kid),
      plaintext: row.secret === null ? null : Buffer.from(row.secret, "base64url"),
      sealed: row.sealedSecret !== null && row.kekId !== null ? { kekId: row.kekId, sealed: row.sealedSecret } : null,
    })),
    ...cas.map((row) => ({
      table: "certificate_authority" as const,
      id: row.id,
      context: sealedContext.certificateAuthority(row.id),
      plaintext: row.privateKey === null ? null : pkcs8Der(row.privateKey),
      sealed: row.sealedPrivateKey !== null && row.kekId !== null ? { kekId: row.kekId, sealed: row.sealedPrivateKey } : null,
    })),
    // Sealed from the first: webhooks came after sealing, so none was ever kept in plain text.
    ...hooks.map((row) => ({
      table: "webhooks" as const,
      id: row.id,
      context: sealedContext.webhookSecret(row.id),
      plaintext: null,
      sealed: { kekId: row.kekId, sealed: row.sealedSecret },
    })),
  ];
}

function pkcs8Der(pem: string): Buffer {
  return createPrivateKey(pem).export({ type: "pkcs8", format: "der" });
}
