import { and, eq, lte, or } from "drizzle-orm";
import { leases } from "../db/schema/index.js";
import type { DbOrTx } from "./context.js";

/**
 * Takes or renews a named lease for `holder` until `now + ttlMs`; true when
 * held. Work that must happen once (the offline sweeper, the event pruner,
 * the webhook fan-out) runs in whichever process holds its lease; a dead
 * holder's lease lapses after ttlMs.
 */
export async function holdLease(db: DbOrTx, name: string, holder: string, now: Date, ttlMs: number): Promise<boolean> {
  const expiresAt = new Date(now.getTime() + ttlMs);
  const held = await db
    .insert(leases)
    .values({ name, holder, expiresAt })
    .onConflictDoUpdate({
      target: leases.name,
      set: { holder, expiresAt },
      setWhere: or(eq(leases.holder, holder), lte(leases.expiresAt, now)),
    })
    .returning({ holder: leases.holder });
  return held.length > 0;
}

/** Hands a lease over at once (a stopping process), if `holder` has it. */
export async function releaseLease(db: DbOrTx, name: string, holder: string): Promise<void> {
  await db.delete(leases).where(and(eq(leases.name, name), eq(leases.holder, holder)));
}
