import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createSecureServer, type Server as SecureServer } from "node:https";
import { getRequestListener } from "@hono/node-server";
import type { ServerTls } from "../tls.js";
import type { AppDeps } from "./env.js";
import { revocationListLane } from "./crl-lane.js";
import { heartbeatLane } from "./heartbeat-lane.js";

/** The Node HTTP server (HTTPS when given the TLS files): the heartbeat and revocation-list lanes first, then the Hono app for everything else. */
export function createHttpServer(
  fetch: Parameters<typeof getRequestListener>[0],
  deps: AppDeps,
  tls?: Pick<ServerTls, "cert" | "key"> | null,
): Server | SecureServer {
  const lanes = [heartbeatLane(deps), revocationListLane(deps)];
  const app = getRequestListener(fetch);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!lanes.some((lane) => lane(req, res))) void app(req, res);
  };
  return tls ? createSecureServer({ cert: tls.cert, key: tls.key }, handle) : createServer(handle);
}
