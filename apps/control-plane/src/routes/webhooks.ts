import type { Hono } from "hono";
import { routes } from "@muster/contract";
import type { AppEnv } from "../http/env.js";
import { mount } from "../http/mount.js";
import { createWebhook, deleteWebhook, listWebhookDeliveries, listWebhooks } from "../services/webhooks.js";

export function webhookRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.createWebhook, async (c, { body }) => c.json(await createWebhook(c.get("deps"), c.get("actor"), body), 201));
  mount(app, routes.listWebhooks, async (c, { query }) => c.json(await listWebhooks(c.get("deps"), c.get("actor"), query), 200));
  mount(app, routes.deleteWebhook, async (c, { params }) => {
    await deleteWebhook(c.get("deps"), c.get("actor"), params.id);
    return c.body(null, 204);
  });
  mount(app, routes.listWebhookDeliveries, async (c, { params, query }) =>
    c.json(await listWebhookDeliveries(c.get("deps"), c.get("actor"), params.id, query), 200),
  );
}
