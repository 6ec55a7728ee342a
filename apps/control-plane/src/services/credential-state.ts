import { eq } from "drizzle-orm";
import { hosts } from "../db/schema/index.js";
import type { Kv } from "../kv/kv.js";
import type { DbOrTx } from "./context.js";
import { credentialStateKey } from "./kv-keys.js";

/**
 * What the heartbeat path needs to know about a host's credentials, cached in
 * the KV store so a beat costs no database read:
 * - `live`: tokens of this family are good;
 * - `none`: the host has no live credentials (never registered, or revoked);
 * - `deleted`: the host is gone (its agent gets 404 and wipes its credentials).
 *
 * Whoever changes a host's credentials overwrites the cached state while
 * holding the host's row lock; cache fills after a miss only write when the key
 * is absent, so a fill that read the database just before a revocation can
 * never restore the old family.
 */
export type CredentialState = { kind: "live"; family: string } | { kind: "none" } | { kind: "deleted" };

const CACHE_TTL_MS = 60 * 60 * 1000;
const NONE = "!none";
const DELETED = "!deleted";

function encode(state: CredentialState): string {
  return state.kind === "live" ? state.family : state.kind === "none" ? NONE : DELETED;
}

function decode(raw: string): CredentialState {
  if (raw === NONE) return { kind: "none" };
  if (raw === DELETED) return { kind: "deleted" };
  return { kind: "live", family: raw };
}

export async function publishCredentialState(kv: Kv, hostId: string, state: CredentialState): Promise<void> {
  await kv.set(credentialStateKey(hostId), encode(state), { ttlMs: CACHE_TTL_MS });
}

export async function credentialState(db: DbOrTx, kv: Kv, hostId: string): Promise<CredentialState> {
  const cached = await kv.get(credentialStateKey(hostId));
  if (cached !== null) return decode(cached);
  const [row] = await db
    .select({ family: hosts.credentialFamily, deletedAt: hosts.deletedAt })
    .from(hosts)
    .where(eq(hosts.id, hostId));
  const state: CredentialState =
    !row || row.deletedAt ? { kind: "deleted" } : row.family ? { kind: "live", family: row.family } : { kind: "none" };
  await kv.set(credentialStateKey(hostId), encode(state), { ttlMs: CACHE_TTL_MS, onlyIfAbsent: true });
  return state;
}
