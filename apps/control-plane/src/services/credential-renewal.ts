import { and, eq, inArray, isNotNull } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { hostRefreshTokens, hosts } from "../db/schema/index.js";
import { newFamily } from "../lib/secrets.js";
import type { ServiceDeps } from "./context.js";
import { publishCredentialState } from "./credential-state.js";

/**
 * Makes hosts refresh their credentials without losing them: each host's
 * credential family moves to a new one, and its refresh tokens (spent ones
 * too, so reuse is still caught) move with it. Every host token it holds stops
 * working at once (a 401 on its next beat, over HTTP or the channel), and its
 * agent refreshes, as it does after any 401, with the refresh token it holds.
 * Returns the hosts that had live credentials.
 */
export async function requireRefresh(tx: Tx, deps: ServiceDeps, hostIds: string[]): Promise<string[]> {
  if (hostIds.length === 0) return [];
  const rows = await tx
    .select({ id: hosts.id, family: hosts.credentialFamily })
    .from(hosts)
    .where(and(inArray(hosts.id, hostIds), isNotNull(hosts.credentialFamily)))
    .for("update");
  const now = deps.clock.now();
  for (const row of rows) {
    const family = newFamily(deps.random);
    await tx.update(hosts).set({ credentialFamily: family, updatedAt: now }).where(eq(hosts.id, row.id));
    await tx
      .update(hostRefreshTokens)
      .set({ family })
      .where(and(eq(hostRefreshTokens.hostId, row.id), eq(hostRefreshTokens.family, row.family!)));
    await publishCredentialState(deps.kv, row.id, { kind: "live", family });
  }
  return rows.map((row) => row.id);
}
