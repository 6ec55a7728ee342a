import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import * as hosts from "../services/hosts.js";
import { probeHost } from "../services/probe.js";

export function hostRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.createHost, async (c, { body }) => c.json(await hosts.createHost(c.get("deps"), c.get("actor"), body), 201));
  mount(app, routes.listHosts, async (c, { query }) => c.json(await hosts.listHosts(c.get("deps"), c.get("actor"), query), 200));
  mount(app, routes.getHost, async (c, { params }) => c.json(await hosts.getHost(c.get("deps"), c.get("actor"), params.id), 200));
  mount(app, routes.deleteHost, async (c, { params }) => {
    await hosts.deleteHost(c.get("deps"), c.get("actor"), params.id);
    return c.body(null, 204);
  });
  mount(app, routes.regenerateHostToken, async (c, { params }) =>
    c.json(await hosts.regenerateHostToken(c.get("deps"), c.get("actor"), params.id), 201),
  );
  mount(app, routes.addHostTag, async (c, { params, body }) => {
    await hosts.addHostTag(c.get("deps"), c.get("actor"), params.id, body.tag);
    return c.body(null, 204);
  });
  mount(app, routes.removeHostTag, async (c, { params }) => {
    await hosts.removeHostTag(c.get("deps"), c.get("actor"), params.id, params.tag);
    return c.body(null, 204);
  });
  mount(app, routes.probeHost, async (c, { params }) => c.json(await probeHost(c.get("deps"), c.get("actor"), params.id), 200));
  mount(app, routes.listHostTags, async (c, { params }) =>
    c.json(await hosts.listHostTags(c.get("deps"), c.get("actor"), params.id), 200),
  );
}
