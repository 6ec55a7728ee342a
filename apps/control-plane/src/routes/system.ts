import type { Hono } from "hono";
import { Scalar } from "@scalar/hono-api-reference";
import type { AppEnv } from "../http/env.js";
import { buildOpenApiDocument } from "../http/openapi.js";
import { errorResponse } from "../http/errors.js";

const READY_CHECK_TIMEOUT_MS = 2_000;

function withTimeout(check: () => Promise<void>): Promise<void> {
  return Promise.race([
    check(),
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error("timed out")), READY_CHECK_TIMEOUT_MS).unref()),
  ]);
}

export function systemRoutes(app: Hono<AppEnv>, version: string): void {
  const document = buildOpenApiDocument(version);

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const checks = Object.entries(c.get("deps").readiness);
    const results = await Promise.all(
      checks.map(async ([name, check]) => [name, await withTimeout(check).then(() => "ok", () => "unreachable")] as const),
    );
    const down = results.filter(([, state]) => state !== "ok").map(([name]) => name);
    if (down.length > 0) return errorResponse(c, "unavailable", `not ready: ${down.join(", ")} unreachable`, 5);
    return c.json({ status: "ready", checks: Object.fromEntries(results) });
  });

  app.get("/openapi.json", (c) => c.json(document));
  app.get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Muster API reference" }));

  app.get("/metrics", async (c) => {
    const { registry } = c.get("deps").metrics;
    return c.text(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });
}
