import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { addMember, createTeam, listMembers, listTeams, removeMember } from "../services/teams.js";

export function teamRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.createTeam, async (c, { body }) => c.json(await createTeam(c.get("deps"), c.get("actor"), body), 201));
  mount(app, routes.listTeams, async (c, { query }) => c.json(await listTeams(c.get("deps"), c.get("actor"), query), 200));
  mount(app, routes.addMember, async (c, { params, body }) =>
    c.json(await addMember(c.get("deps"), c.get("actor"), params.team_id, body), 201),
  );
  mount(app, routes.listMembers, async (c, { params, query }) =>
    c.json(await listMembers(c.get("deps"), c.get("actor"), params.team_id, query), 200),
  );
  mount(app, routes.removeMember, async (c, { params }) => {
    await removeMember(c.get("deps"), c.get("actor"), params.team_id, params.user_id);
    return c.body(null, 204);
  });
}
