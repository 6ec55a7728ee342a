import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { whoAmI } from "../services/identity.js";

export function identityRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getMe, async (c) => c.json(await whoAmI(c.get("deps"), c.get("actor")), 200));
}
