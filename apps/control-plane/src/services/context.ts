import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Db, Tx } from "../db/client.js";
import type { Kv } from "../kv/kv.js";
import type { Clock, RandomBytes } from "../lib/clock.js";
import type { Metrics } from "../metrics.js";
import type { HostTokens } from "../auth/host-tokens.js";
import type { CaKeyring } from "../pki/authorities.js";
import type { AddressPolicy } from "../net/address-policy.js";
import type { ControlPlaneIdentity } from "../pki/identity.js";
import type { Sealer } from "../secrets/sealer.js";
import type { Pacing } from "./pacing.js";
import type { ProbeSlots } from "./probe.js";
import type { RevocationLists } from "./revocation-lists.js";

/** Everything a service needs, built once in main.ts (or a test) and passed in. */
export interface ServiceDeps {
  db: Db;
  kv: Kv;
  clock: Clock;
  random: RandomBytes;
  config: Config;
  logger: Logger;
  metrics: Metrics;
  hostTokens: HostTokens;
  pacing: Pacing;
  /** The CAs: the one that signs, and during a rotation the one being replaced. */
  ca: CaKeyring;
  /** Seals and opens private keys under the key-encryption key, which the database never holds. */
  sealer: Sealer;
  /** This process's client certificate for calling agents. */
  identity: ControlPlaneIdentity;
  /** Which addresses the control plane may connect to on a host's word. */
  addresses: AddressPolicy;
  /** The trusted CAs' revocation lists, signed once per change. */
  revocationLists: RevocationLists;
  /** This process's probes under way. */
  probeSlots: ProbeSlots;
}

export type DbOrTx = Db | Tx;

/**
 * Runs `work` in a transaction, joining the caller's when there is one, so
 * services can call services and the whole unit commits or rolls back together.
 * Inside, use only the handle given: the embedded database has one session, and
 * a query on the outer handle would wait for this very transaction.
 */
export function withTransaction<T>(db: DbOrTx, work: (tx: Tx) => Promise<T>): Promise<T> {
  if (isTransaction(db)) return work(db);
  return db.transaction(work);
}

function isTransaction(db: DbOrTx): db is Tx {
  return typeof (db as Tx).rollback === "function";
}
