import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { listAudit } from "../services/audit.js";

export function auditRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.listAudit, async (c, { query }) => c.json(await listAudit(c.get("deps"), c.get("actor"), query), 200));
}
