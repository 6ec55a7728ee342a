import type { Hono } from "hono";
import { routes } from "@muster/contract";
import type { AppEnv } from "../http/env.js";
import { errorResponse } from "../http/errors.js";
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

  mount(app, routes.getMetrics, async (c) => {
    const { registry } = c.get("deps").metrics;
    return c.text(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  app.get("/openapi.json", (c) => c.json(withServerOf(c, document)));
}
