import { count, eq } from "drizzle-orm";
import { users } from "../db/schema/index.js";
import { newId } from "../lib/ids.js";
import { insertApiKey } from "./api-keys.js";
import { recordAudit, SYSTEM_ACTOR } from "./audit.js";
import { withTransaction, type ServiceDeps } from "./context.js";

export type BootstrapResult =
  | { created: false }
  | { created: true; userId: string; key: string; seeded: boolean };

const ADMIN_EMAIL = "admin@muster.local";

/**
 * On an empty database, creates the first admin and its API key: the value of
 * MUSTER_ADMIN_KEY when set, else a fresh key the caller prints once. Callers
 * run this under the migration lock, so two processes starting together cannot
 * both bootstrap.
 */
export async function bootstrapAdmin(deps: Pick<ServiceDeps, "db" | "clock" | "random">, adminKey: string | null) {
  return withTransaction(deps.db, async (tx): Promise<BootstrapResult> => {
    const [existing] = await tx.select({ n: count() }).from(users).where(eq(users.isAdmin, true));
    if (existing && existing.n > 0) return { created: false };
    const userId = newId(deps.random, "user");
    await tx.insert(users).values({ id: userId, email: ADMIN_EMAIL, name: "Bootstrap admin", isAdmin: true, createdAt: deps.clock.now() });
    const { row, key } = await insertApiKey(tx, deps, {
      name: "bootstrap",
      userId,
      teamId: null,
      ...(adminKey === null ? {} : { secret: adminKey }),
    });
    await recordAudit(tx, deps, [
      { actor: SYSTEM_ACTOR, action: "user.created", targetType: "user", targetId: userId, teamId: null, metadata: { bootstrap: true } },
      { actor: SYSTEM_ACTOR, action: "api_key.created", targetType: "api_key", targetId: row.id, teamId: null, metadata: { user_id: userId, bootstrap: true } },
    ]);
    return { created: true, userId, key, seeded: adminKey !== null };
  });
}
