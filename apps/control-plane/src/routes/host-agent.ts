import type { Context, Hono } from "hono";
import { AGENT_CLOCK_HEADER, PROTOCOL_HEADER, routes, type HostCredentials } from "@muster/contract";
import { mount } from "../http/mount.js";
import { clientAddress } from "../http/client-address.js";
import type { AppEnv } from "../http/env.js";
import { header } from "../http/node-request.js";
import { refreshHostCredentials, registerHost } from "../services/host-credentials.js";
import { checkProtocolHeader } from "../services/protocol.js";

export function hostAgentRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.registerHost, async (c, { body }) => {
    const deps = c.get("deps");
    const protocolVersion = checkProtocolHeader(deps.config, header(c, PROTOCOL_HEADER));
    return credentialsAnswer(c, await registerHost(deps, body, clientAddress(c, deps.config.trustedProxies), protocolVersion), 201);
  });
  mount(app, routes.refreshHostCredentials, async (c, { body }) => {
    const deps = c.get("deps");
    return credentialsAnswer(c, await refreshHostCredentials(deps, body, clientAddress(c, deps.config.trustedProxies)), 200);
  });
  mount(app, routes.heartbeat, async (c, { params, body }) => {
    checkProtocolHeader(c.get("deps").config, header(c, PROTOCOL_HEADER));
    await c.get("deps").liveness.heartbeat(c.get("hostClaims"), params.id, { metrics: body, agentClock: header(c, AGENT_CLOCK_HEADER) });
    return c.body(null, 204);
  });
}

/**
 * Credentials as JSON. The revocation list inside can be megabytes, whose
 * escaping would hold the event loop for every refresh: the list served now
 * comes escaped already (revocation-lists.ts) and is spliced in.
 */
function credentialsAnswer(c: Context<AppEnv>, credentials: HostCredentials, status: 200 | 201): Response {
  const { crl, ...rest } = credentials;
  const escaped = crl === undefined ? null : c.get("deps").revocationLists.jsonOf(crl);
  if (escaped === null) return c.json(credentials, status);
  const head = JSON.stringify(rest);
  return c.body(`${head.slice(0, -1)},"crl":"${escaped}"}`, status, { "Content-Type": "application/json" });
}
