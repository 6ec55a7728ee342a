import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf, QueryOf } from "./types.js";

/** A team's members: `client.teams.members` (admins and the team's owners). */
export class TeamMembers {
  constructor(private readonly transport: Transport) {}

  /** Adds a user as `owner` or `member`; adding an existing member is a 409. */
  add(teamId: string, body: BodyOf<typeof routes.addMember>, options?: RequestOptions) {
    return this.transport.call(routes.addMember, { params: { team_id: teamId }, body }, options);
  }

  /** The team's members, oldest first (admins and the team's own members). */
  list(teamId: string, filters?: ListFilters<typeof routes.listMembers>, options?: RequestOptions) {
    return paginate(this.transport, routes.listMembers, filters, options, { team_id: teamId });
  }

  listPage(teamId: string, query?: QueryOf<typeof routes.listMembers>, options?: RequestOptions) {
    return this.transport.call(routes.listMembers, { params: { team_id: teamId }, query }, options);
  }

  /** Removes a member and revokes their API keys for the team; the last owner cannot be removed (409). */
  remove(teamId: string, userId: string, options?: RequestOptions) {
    return this.transport.call(routes.removeMember, { params: { team_id: teamId, user_id: userId } }, options);
  }
}

/** `client.teams`: admins see every team, everyone else their own. */
export class Teams {
  readonly members: TeamMembers;

  constructor(private readonly transport: Transport) {
    this.members = new TeamMembers(transport);
  }

  create(body: BodyOf<typeof routes.createTeam>, options?: RequestOptions) {
    return this.transport.call(routes.createTeam, { body }, options);
  }

  list(filters?: ListFilters<typeof routes.listTeams>, options?: RequestOptions) {
    return paginate(this.transport, routes.listTeams, filters, options);
  }

  listPage(query?: QueryOf<typeof routes.listTeams>, options?: RequestOptions) {
    return this.transport.call(routes.listTeams, { query }, options);
  }
}
