import { createMiddleware } from "hono/factory";
import { HOST_TOKEN_HEADER } from "@muster/contract";
import { header } from "../http/node-request.js";
import { unauthorized } from "../errors.js";
import type { AppEnv } from "../http/env.js";
import { authenticateApiKey } from "../services/api-keys.js";

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/;

/** Operator endpoints: `Authorization: Bearer <key>`. A host token is never an operator credential. */
export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const authorization = header(c, "authorization");
  if (!authorization) {
    const hint = header(c, HOST_TOKEN_HEADER) ? "; host tokens are not accepted on operator endpoints" : "";
    throw unauthorized(`missing API key: send 'Authorization: Bearer <key>'${hint}`);
  }
  const match = BEARER.exec(authorization);
  if (!match) throw unauthorized("malformed Authorization header: expected 'Bearer <key>'");
  c.set("actor", await authenticateApiKey(c.get("deps"), match[1]!));
  await next();
});

/** Host endpoints: `X-Host-Token: <jwt>`. An operator key is never a host credential. */
export const requireHostToken = createMiddleware<AppEnv>(async (c, next) => {
  const token = header(c, HOST_TOKEN_HEADER);
  if (!token) {
    const hint = header(c, "authorization") ? "; operator API keys are not accepted on host endpoints" : "";
    throw unauthorized(`missing host token: send 'X-Host-Token: <jwt>'${hint}`);
  }
  c.set("hostClaims", await c.get("deps").hostTokens.verify(token));
  await next();
});
