import { createMiddleware } from "hono/factory";
import { unauthorized } from "../errors.js";
import type { AppEnv } from "../http/env.js";
import { authenticateApiKey } from "../services/api-keys.js";

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/;

/** Operator endpoints: `Authorization: Bearer <key>`. A host token is never an operator credential. */
export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("authorization");
  if (!header) {
    const hint = c.req.header("x-host-token") ? "; host tokens are not accepted on operator endpoints" : "";
    throw unauthorized(`missing API key: send 'Authorization: Bearer <key>'${hint}`);
  }
  const match = BEARER.exec(header);
  if (!match) throw unauthorized("malformed Authorization header: expected 'Bearer <key>'");
  c.set("actor", await authenticateApiKey(c.get("deps"), match[1]!));
  await next();
});

/** Host endpoints: `X-Host-Token: <jwt>`. An operator key is never a host credential. */
export const requireHostToken = createMiddleware<AppEnv>(async (c, next) => {
  const token = c.req.header("x-host-token");
  if (!token) {
    const hint = c.req.header("authorization") ? "; operator API keys are not accepted on host endpoints" : "";
    throw unauthorized(`missing host token: send 'X-Host-Token: <jwt>'${hint}`);
  }
  c.set("hostClaims", await c.get("deps").hostTokens.verify(token));
  await next();
});
