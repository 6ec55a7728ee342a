import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { randomUUID } from "node:crypto";
import { routePath } from "hono/route";
import { declaresBody } from "./http/node-request.js";
import type { AppDeps, AppEnv } from "./http/env.js";
import { errorResponse, handleError } from "./http/errors.js";
import { allowedMethods } from "./http/allowed-methods.js";
import { apiKeyRoutes } from "./routes/api-keys.js";
import { auditRoutes } from "./routes/audit.js";
import { commandRoutes } from "./routes/commands.js";
import { builtConsoleDir, consoleRoutes } from "./routes/console.js";
import { docsRoutes } from "./routes/docs.js";
import { eventRoutes } from "./routes/events.js";
import { hostAgentRoutes } from "./routes/host-agent.js";
import { hostRoutes } from "./routes/hosts.js";
import { identityRoutes } from "./routes/identity.js";
import { pkiRoutes } from "./routes/pki.js";
import { systemKeyRoutes } from "./routes/system-keys.js";
import { systemRoutes } from "./routes/system.js";
import { teamRoutes } from "./routes/teams.js";
import { userRoutes } from "./routes/users.js";
import { webhookRoutes } from "./routes/webhooks.js";

export const MAX_BODY_BYTES = 64 * 1024;
export const VERSION = "0.1.0";

/** The whole HTTP surface, built from injected dependencies; no I/O happens here. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    c.set("deps", deps);
    // Every response names its request, so a client's error report can be found in the logs.
    const requestId = randomUUID();
    c.set("requestId", requestId);
    c.header("X-Request-Id", requestId);
    const started = performance.now();
    await next();
    const route = routePath(c);
    deps.metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    deps.metrics.httpDuration.observe({ method: c.req.method, route }, (performance.now() - started) / 1000);
  });
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => errorResponse(c, "payload_too_large", "request body is larger than 64 KiB"),
  });
  app.use((c, next) => (declaresBody(c) ? limitBody(c, next) : next()));

  systemRoutes(app, VERSION);
  docsRoutes(app);
  consoleRoutes(app, () => deps.config.consoleDir ?? builtConsoleDir());
  identityRoutes(app);
  userRoutes(app);
  teamRoutes(app);
  apiKeyRoutes(app);
  pkiRoutes(app);
  systemKeyRoutes(app);
  hostAgentRoutes(app);
  hostRoutes(app);
  commandRoutes(app);
  auditRoutes(app);
  eventRoutes(app);
  webhookRoutes(app);

  const allowed = allowedMethods(app);
  app.notFound((c) => {
    const methods = allowed(c.req.path);
    if (methods.length === 0) return errorResponse(c, "not_found", `no such endpoint: ${c.req.method} ${c.req.path}`);
    c.header("Allow", methods.join(", "));
    return errorResponse(c, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(", ")}`);
  });
  app.onError((error, c) => handleError(error, c, deps.logger));
  return app;
}
