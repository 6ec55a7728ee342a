import type { MeResponse } from "@muster/contract";
import { eq } from "drizzle-orm";
import { teams, users } from "../db/schema/index.js";
import type { Actor } from "./actor.js";
import type { ServiceDeps } from "./context.js";
import { teamView } from "./teams.js";
import { userView } from "./users.js";

export async function whoAmI(deps: ServiceDeps, actor: Actor): Promise<MeResponse> {
  const [user] = await deps.db.select().from(users).where(eq(users.id, actor.userId));
  const [team] = actor.teamId === null ? [] : await deps.db.select().from(teams).where(eq(teams.id, actor.teamId));
  return { user: userView(user!), team: team ? teamView(team) : null, role: actor.role };
}
