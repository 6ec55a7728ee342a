import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { createApiKey, listApiKeys, revokeApiKey } from "../services/api-keys.js";

export function apiKeyRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.createApiKey, async (c, { body }) => c.json(await createApiKey(c.get("deps"), c.get("actor"), body), 201));
  mount(app, routes.listApiKeys, async (c, { query }) => c.json(await listApiKeys(c.get("deps"), c.get("actor"), query), 200));
  mount(app, routes.revokeApiKey, async (c, { params }) => {
    await revokeApiKey(c.get("deps"), c.get("actor"), params.id);
    return c.body(null, 204);
  });
}
