import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { caStatus, rotateCa } from "../services/ca-rotation.js";
import { rotateSigningKey } from "../services/signing-keys.js";

export function systemKeyRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.rotateSigningKey, async (c) => c.json(await rotateSigningKey(c.get("deps"), c.get("actor")), 200));
  mount(app, routes.getCaStatus, async (c) => c.json(await caStatus(c.get("deps"), c.get("actor")), 200));
  mount(app, routes.rotateCa, async (c, { body }) => c.json(await rotateCa(c.get("deps"), c.get("actor"), body), 200));
}
