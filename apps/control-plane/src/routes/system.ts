import { createHash, timingSafeEqual } from "node:crypto";
import type { Hono } from "hono";
import { routes } from "@muster/contract";
import type { AppEnv } from "../http/env.js";
import { errorResponse } from "../http/errors.js";
import { header } from "../http/node-request.js";
import { mount } from "../http/mount.js";
import { buildOpenApiDocument, withServerOf } from "../http/openapi.js";

const READY_CHECK_TIMEOUT_MS = 2_000;

function withTimeout(check: () => Promise<void>): Promise<void> {
  return Promise.race([
    check(),
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error("timed out")), READY_CHECK_TIMEOUT_MS).unref()),
  ]);
}

export function systemRoutes(app: Hono<AppEnv>, version: string): void {
  const document = buildOpenApiDocument(version);

  mount(app, routes.getHealth, async (c) => c.json({ status: "ok" as const }, 200));

  mount(app, routes.getReadiness, async (c) => {
    const checks = Object.entries(c.get("deps").readiness);
    const results = await Promise.all(
      checks.map(async ([name, check]) => [name, await withTimeout(check).then(() => "ok", () => "unreachable")] as const),
    );
    const down = results.filter(([, state]) => state !== "ok").map(([name]) => name);
    if (down.length > 0) return errorResponse(c, "unavailable", `not ready: ${down.join(", ")} unreachable`, 5);
    return c.json({ status: "ready", checks: Object.fromEntries(results) }, 200);
  });

  // Open unless MUSTER_METRICS_TOKEN is set: then only its bearer reads the figures.
  mount(app, routes.getMetrics, async (c) => {
    const { metrics, config } = c.get("deps");
    if (config.metricsToken !== null && !isBearer(header(c, "authorization"), config.metricsToken)) {
      c.header("WWW-Authenticate", 'Bearer realm="metrics"');
      return errorResponse(c, "unauthorized", "/metrics needs the metrics token: send 'Authorization: Bearer <MUSTER_METRICS_TOKEN>'");
    }
    const { registry } = metrics;
    return c.text(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  app.get("/openapi.json", (c) => c.json(withServerOf(c, document)));
}

/** Whether the Authorization header carries this bearer token; compared in constant time (as digests, so lengths do not leak). */
function isBearer(authorization: string | undefined, token: string): boolean {
  const given = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
  if (given === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}
