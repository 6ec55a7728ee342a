import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { createUser, listUsers } from "../services/users.js";

export function userRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.createUser, async (c, { body }) => c.json(await createUser(c.get("deps"), c.get("actor"), body), 201));
  mount(app, routes.listUsers, async (c, { query }) => c.json(await listUsers(c.get("deps"), c.get("actor"), query), 200));
}
