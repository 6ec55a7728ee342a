import type { Role } from "@muster/contract";
import { forbidden, notFound } from "../errors.js";

/** The operator behind an API key: who, which team the key acts in, and with what role. */
export interface Actor {
  userId: string;
  keyId: string;
  isAdmin: boolean;
  teamId: string | null;
  role: Role;
}

export function requireAdmin(actor: Actor): void {
  if (!actor.isAdmin) throw forbidden("this action needs an admin API key");
}

/**
 * Team scope: admins reach every team; others only the team their key acts in
 * (anything else is "not found", never "forbidden", so other teams stay invisible).
 * `manage` additionally needs the owner role.
 */
export function requireTeamAccess(actor: Actor, teamId: string, need: "read" | "manage", what = "team"): void {
  if (actor.isAdmin) return;
  if (actor.teamId !== teamId) throw notFound(what);
  if (need === "manage" && actor.role !== "owner") {
    throw forbidden(`this action needs the owner role in team ${teamId}; your role is ${actor.role}`);
  }
}
