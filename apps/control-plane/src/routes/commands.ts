import type { Hono } from "hono";
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER, routes } from "@muster/contract";
import { conflict, notFound } from "../errors.js";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { getCommand, listCommands, recordResult, sendCommand } from "../services/commands.js";

export function commandRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.sendCommand, async (c, { params, headers, body }) => {
    const { command, replayed } = await sendCommand(c.get("deps"), c.get("actor"), params.id, body, headers[IDEMPOTENCY_KEY_HEADER]);
    if (replayed) c.header(IDEMPOTENT_REPLAYED_HEADER, "true");
    return c.json(command, 201);
  });
  mount(app, routes.listCommands, async (c, { params, query }) =>
    c.json(await listCommands(c.get("deps"), c.get("actor"), params.id, query), 200),
  );
  mount(app, routes.getCommand, async (c, { params }) =>
    c.json(await getCommand(c.get("deps"), c.get("actor"), params.id, params.command_id), 200),
  );
  mount(app, routes.submitCommandResult, async (c, { params, body }) => {
    const deps = c.get("deps");
    await deps.liveness.authorize(c.get("hostClaims"), params.id);
    const fate = await recordResult(deps, params.id, params.command_id, body, deps.clock.now());
    if (fate === "unknown") throw notFound("command");
    if (fate === "conflict") throw conflict("this command already has another result; the first result stays");
    return c.body(null, 204);
  });
}
