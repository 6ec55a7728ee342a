import type { Context, Hono } from "hono";
import type { RouteDef, RouteInput } from "@muster/contract";
import { requireApiKey, requireHostToken } from "../auth/middleware.js";
import type { AppEnv } from "./env.js";
import { compileValidator } from "./validate.js";

export type Handler<R extends RouteDef> = (c: Context<AppEnv>, input: RouteInput<R>) => Promise<Response>;

const AUTH = {
  api_key: [requireApiKey],
  host_token: [requireHostToken],
  body_secret: [],
  none: [],
} as const;

/** The route's path in Hono's notation (`{id}` → `:id`), which is also its `route` label in the metrics. */
export function honoPath(route: RouteDef): string {
  return route.path.replace(/\{(\w+)\}/g, ":$1");
}

/**
 * Mounts one route of the contract: its path, its authentication, its input
 * validation (credentials are checked before input, so callers without them
 * learn nothing about the schema) and the handler.
 */
export function mount<R extends RouteDef>(app: Hono<AppEnv>, route: R, handler: Handler<R>): void {
  const path = honoPath(route);
  const validate = compileValidator(route);
  app.on([route.method.toUpperCase()], [path], ...AUTH[route.auth], async (c) => {
    const input = (await validate(c)) as RouteInput<R>;
    return handler(c, input);
  });
}
