import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { getCommand, sendCommand } from "../services/commands.js";

export function commandRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.sendCommand, async (c, { params, body }) =>
    c.json(await sendCommand(c.get("deps"), c.get("actor"), params.id, body), 201),
  );
  mount(app, routes.getCommand, async (c, { params }) =>
    c.json(await getCommand(c.get("deps"), c.get("actor"), params.id, params.command_id), 200),
  );
}
