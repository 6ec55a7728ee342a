import type { ApiKey, Host, MeResponse } from "@muster/sdk/client";

/**
 * What the signed-in key may do, as SPEC §3 and the API decide it: the
 * console offers only these actions. The API still decides every call; this
 * only keeps operators from being shown buttons that can only fail.
 */
export interface Abilities {
  /** Create hosts: admins (any type, any team), owners (BYOC in their team). */
  createHosts: boolean;
  createRegularHosts: boolean;
  /** Delete, re-token, tag, command and probe this host. */
  manageHost(host: Pick<Host, "type" | "team_id">): boolean;
  readAudit: boolean;
  createTeams: boolean;
  /** Add and remove a team's members. */
  manageMembers(teamId: string): boolean;
  manageUsers: boolean;
  /** Create keys for other users and teams. */
  createKeysForOthers: boolean;
  revokeKey(key: Pick<ApiKey, "user_id" | "team_id">): boolean;
  /** Admins see every team's hosts and can filter by team. */
  seesAllTeams: boolean;
}

export function abilitiesOf(me: MeResponse): Abilities {
  const admin = me.role === "admin";
  const ownsTeam = (teamId: string | null) => admin || (me.role === "owner" && teamId !== null && teamId === me.team?.id);
  return {
    createHosts: admin || me.role === "owner",
    createRegularHosts: admin,
    manageHost: (host) => (host.type === "regular" ? admin : ownsTeam(host.team_id)),
    readAudit: admin || me.role === "owner",
    createTeams: admin,
    manageMembers: (teamId) => ownsTeam(teamId),
    manageUsers: admin,
    createKeysForOthers: admin,
    revokeKey: (key) => admin || key.user_id === me.user.id || ownsTeam(key.team_id),
    seesAllTeams: admin,
  };
}
