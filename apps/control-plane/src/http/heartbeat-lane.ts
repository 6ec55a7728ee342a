import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { AGENT_CLOCK_HEADER, HOST_TOKEN_HEADER, PROTOCOL_HEADER, routes } from "@muster/contract";
import { acceptsProtocolHeader } from "../services/protocol.js";
import type { AppDeps } from "./env.js";
import { honoPath } from "./mount.js";
import { headersDeclareBody } from "./node-request.js";

const HEARTBEAT_URL = /^\/v1\/hosts\/([^/?#]+)\/heartbeat$/;

/**
 * The heartbeat's fast lane, in front of the Hono app on the Node server.
 * Nearly all of a fleet's traffic is one request: a known host beating with a
 * token verified before and no body. Building a web Request, a Hono context
 * and a Response for it costs more than the beat itself, so such beats are
 * answered here from node:http. The lane never refuses anything: whatever it
 * cannot accept outright (a first beat, an unverified or expired token, a
 * body, a revoked family, a mismatched path) goes to the app, which decides it
 * with the full stack. Its answer is the app's: 204, X-Request-Id, and the
 * same request metrics.
 *
 * Returns true when it answered the request.
 */
export function heartbeatLane(deps: AppDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const route = honoPath(routes.heartbeat);
  const requests = deps.metrics.httpRequests.labels("POST", route, "204");
  const duration = deps.metrics.httpDuration.labels("POST", route);
  return (req, res) => {
    if (req.method !== "POST") return false;
    const match = HEARTBEAT_URL.exec(req.url ?? "");
    if (!match) return false;
    const { headers } = req;
    if (headersDeclareBody(headers)) return false;
    // An agent too old for this control plane is refused by the app, with the reason.
    if (!acceptsProtocolHeader(deps.config, headers[PROTOCOL_HEADER] as string | undefined)) return false;
    const token = headers[HOST_TOKEN_HEADER];
    if (typeof token !== "string") return false;
    const started = performance.now();
    const claims = deps.hostTokens.verifiedBefore(token);
    if (!claims || !deps.liveness.recordKnownBeat(claims, match[1]!, headers[AGENT_CLOCK_HEADER] as string | undefined)) return false;
    res.writeHead(204, { "X-Request-Id": randomUUID() });
    res.end();
    requests.inc();
    duration.observe((performance.now() - started) / 1000);
    return true;
  };
}
