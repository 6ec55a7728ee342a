import { eq } from "drizzle-orm";
import { hosts } from "../db/schema/index.js";
import { BoundedMap } from "../lib/bounded.js";
import { isStoreUnavailable } from "../lib/store-errors.js";
import type { Kv, Subscription } from "../kv/kv.js";
import type { DbOrTx } from "./context.js";
import { CREDENTIAL_CHANGES_CHANNEL, credentialStateKey } from "./kv-keys.js";

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

/** Records the new state, then tells every process to drop what it cached for the host. */
export async function publishCredentialState(kv: Kv, hostId: string, state: CredentialState): Promise<void> {
  await kv.set(credentialStateKey(hostId), encode(state), { ttlMs: CACHE_TTL_MS });
  await kv.publish(CREDENTIAL_CHANGES_CHANNEL, hostId);
}

export async function credentialState(db: DbOrTx, kv: Kv, hostId: string): Promise<CredentialState> {
  let cached: string | null;
  try {
    cached = await kv.get(credentialStateKey(hostId));
  } catch (error) {
    // The KV store is unreachable: the database (the truth) answers alone, so known hosts keep beating through
    // a KV outage, at the cost of one primary-key read per beat until it is back.
    if (isStoreUnavailable(error)) return storedCredentialState(db, hostId);
    throw error;
  }
  if (cached !== null) return decode(cached);
  const state = await storedCredentialState(db, hostId);
  await kv.set(credentialStateKey(hostId), encode(state), { ttlMs: CACHE_TTL_MS, onlyIfAbsent: true });
  return state;
}

async function storedCredentialState(db: DbOrTx, hostId: string): Promise<CredentialState> {
  const [row] = await db
    .select({ family: hosts.credentialFamily, deletedAt: hosts.deletedAt })
    .from(hosts)
    .where(eq(hosts.id, hostId));
  return !row || row.deletedAt ? { kind: "deleted" } : row.family ? { kind: "live", family: row.family } : { kind: "none" };
}

const LOCAL_CACHE_MAX = 200_000;

/**
 * This process's copy of credential states, so a heartbeat costs no KV read.
 * Every change is announced on the credential-changes channel and drops the
 * host's entry in every process at once. While delivery on that channel is in
 * doubt (Redis reconnecting) the copy is emptied and bypassed; a read that
 * raced an announcement is not kept (the epoch moved), so the copy can never
 * outlive a revocation.
 */
export class CredentialCache {
  private readonly local = new BoundedMap<string, CredentialState>(LOCAL_CACHE_MAX);
  private epoch = 0;
  private reliable = false;
  private subscription: Subscription | null = null;

  constructor(
    private readonly db: DbOrTx,
    private readonly kv: Kv,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.kv.subscribe(
      CREDENTIAL_CHANGES_CHANNEL,
      (hostId) => {
        this.epoch++;
        this.local.delete(hostId);
      },
      (reliable) => {
        this.epoch++;
        this.local.clear();
        this.reliable = reliable;
      },
    );
  }

  async stop(): Promise<void> {
    this.reliable = false;
    this.local.clear();
    await this.subscription?.close();
    this.subscription = null;
  }

  /** Whether this process's copy can be trusted now: announcements reach it. */
  get trusted(): boolean {
    return this.reliable;
  }

  /** This process's copy, when it has one it can trust; never reads a store. */
  peek(hostId: string): CredentialState | undefined {
    return this.reliable ? this.local.get(hostId) : undefined;
  }

  async get(hostId: string): Promise<CredentialState> {
    const known = this.peek(hostId);
    if (known) return known;
    const epoch = this.epoch;
    const state = await credentialState(this.db, this.kv, hostId);
    if (this.reliable && epoch === this.epoch) {
      this.local.set(hostId, state);
    }
    return state;
  }
}
