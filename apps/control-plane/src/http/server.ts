import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { AppDeps } from "./env.js";
import { heartbeatLane } from "./heartbeat-lane.js";

/** The Node HTTP server: the heartbeat lane first, then the Hono app for everything else. */
export function createHttpServer(fetch: Parameters<typeof getRequestListener>[0], deps: AppDeps): Server {
  const lane = heartbeatLane(deps);
  const app = getRequestListener(fetch);
  return createServer((req, res) => {
    if (!lane(req, res)) void app(req, res);
  });
}
