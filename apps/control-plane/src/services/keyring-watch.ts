import type { Subscription } from "../kv/kv.js";
import type { ServiceDeps } from "./context.js";
import { KEYRING_RELOAD_MS, type KeyringChange } from "./keyring.js";
import { KEYRING_CHANNEL } from "./kv-keys.js";
import { deleteRetiredSigningKeys, rotateSigningKeyIfOlder } from "./signing-keys.js";

const DAY_MS = 24 * 3600 * 1000;

/**
 * Keeps this process's signing keys and CAs in step with the database: it
 * reloads what another process announces it changed, everything again when
 * announcements were in doubt (the KV store reconnected), and once a minute
 * regardless; that minute also deletes signing keys whose tokens have all
 * expired and, with MUSTER_SIGNING_KEY_ROTATE_DAYS, rotates a key that old.
 */
export class KeyringWatch {
  private subscription: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ServiceDeps) {}

  async start(): Promise<void> {
    this.subscription = await this.deps.kv.subscribe(
      KEYRING_CHANNEL,
      (change) => void this.reload([change as KeyringChange]),
      (reliable) => {
        if (reliable) void this.reload(["signing-keys", "ca"]);
      },
    );
    this.timer = setInterval(() => void this.tick(), KEYRING_RELOAD_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.subscription?.close();
    this.subscription = null;
  }

  /** The minute's work; tests with a fake clock call it by hand. */
  async tick(): Promise<void> {
    const { db, clock, config, hostTokens } = this.deps;
    try {
      const now = clock.now();
      await deleteRetiredSigningKeys(db, now);
      if (config.signingKeyRotateDays !== null) {
        const olderThan = new Date(now.getTime() - config.signingKeyRotateDays * DAY_MS);
        if (hostTokens.currentCreatedAt <= olderThan) await rotateSigningKeyIfOlder(this.deps, olderThan);
      }
      await this.reload(["signing-keys", "ca"]);
    } catch (error) {
      this.deps.logger.warn({ err: error }, "keyring upkeep failed; retried in a minute");
    }
  }

  private async reload(changes: KeyringChange[]): Promise<void> {
    try {
      await Promise.all(changes.map((change) => (change === "ca" ? this.reloadCas() : change === "signing-keys" ? this.deps.hostTokens.reload() : undefined)));
    } catch (error) {
      this.deps.logger.warn({ err: error, changes }, "could not reload the shared keys; retried within a minute");
    }
  }

  /** After a CA rotation step, the lists of the CAs now trusted are taken up at once (from the store, where the rotating process left them), not at the first request. */
  private async reloadCas(): Promise<void> {
    await this.deps.ca.reload();
    await this.deps.revocationLists.current();
  }
}
