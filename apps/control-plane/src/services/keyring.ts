import { KEYRING_CHANNEL } from "./kv-keys.js";
import type { ServiceDeps } from "./context.js";

/**
 * Every process reloads the shared keys this often, whatever it heard: the
 * backstop for an announcement lost while the KV store was away, and the
 * longest a process may go on signing with a key that began to retire.
 */
export const KEYRING_RELOAD_MS = 60_000;

export type KeyringChange = "signing-keys" | "ca";

/** Tells every control plane to reload the signing keys or the CAs; a lost announcement is made up by the next reload. */
export async function announceKeyringChange(deps: Pick<ServiceDeps, "kv" | "logger">, change: KeyringChange): Promise<void> {
  try {
    await deps.kv.publish(KEYRING_CHANNEL, change);
  } catch (error) {
    deps.logger.warn({ err: error, change }, `could not announce the change to other control planes; they reload within ${KEYRING_RELOAD_MS / 1000} s`);
  }
}
