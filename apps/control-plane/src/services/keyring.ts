import { sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { KEYRING_CHANNEL } from "./kv-keys.js";
import type { ServiceDeps } from "./context.js";

/**
 * Every process reloads the shared keys this often, whatever it heard: the
 * backstop for an announcement lost while the KV store was away, and the
 * longest a process may go on signing with a key that began to retire.
 */
export const KEYRING_RELOAD_MS = 60_000;

export type KeyringChange = "signing-keys" | "ca";

// Any fixed number shared by every process of one deployment (the start-up lock is 727_001).
const KEYRING_LOCK_KEY = 727_002;

/**
 * Serialises changes to the signing keys and CAs across processes, until the
 * transaction ends. Row locks would not do: a second rotation waiting on the
 * first would then read the rows as they were before the first one's insert.
 */
export async function lockKeyring(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${KEYRING_LOCK_KEY})`);
}

/** Tells every control plane to reload the signing keys or the CAs; a lost announcement is made up by the next reload. */
export async function announceKeyringChange(deps: Pick<ServiceDeps, "kv" | "logger">, change: KeyringChange): Promise<void> {
  try {
    await deps.kv.publish(KEYRING_CHANNEL, change);
  } catch (error) {
    deps.logger.warn({ err: error, change }, `could not announce the change to other control planes; they reload within ${KEYRING_RELOAD_MS / 1000} s`);
  }
}
