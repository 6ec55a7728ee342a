import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { routes } from "@muster/contract";
import type { ServedList } from "../services/revocation-lists.js";
import type { AppDeps } from "./env.js";
import { honoPath } from "./mount.js";

/** Caches may keep the list but must ask again each time; an unchanged list costs a 304. */
export const CRL_CACHE_CONTROL = "public, no-cache";

/** Whether an If-None-Match header names the list's ETag (or any, `*`); weak tags compare by their value. */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(",").some((tag) => {
    const trimmed = tag.trim();
    return trimmed === "*" || trimmed.replace(/^W\//, "") === etag;
  });
}

export function crlHeaders(list: ServedList): Record<string, string> {
  return { ETag: list.etag, "Cache-Control": CRL_CACHE_CONTROL };
}

/**
 * The revocation list's fast lane, in front of the Hono app on the Node
 * server. Anyone may fetch the list, and with many revocations it is
 * megabytes: through a web Response every answer is copied through a stream
 * (measured: 10 clients in a loop held /healthz at 340 ms p99). Here the
 * buffer made once per list (revocation-lists.ts) goes to the socket as it is.
 * Only a plain GET with a list in memory is answered here; anything else (a
 * query string, no list yet, one due for renewal) goes to the app, which
 * answers the same way after loading the list. Its answer is the app's: the
 * same headers, X-Request-Id and request metrics.
 *
 * Returns true when it answered the request.
 */
export function revocationListLane(deps: AppDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const route = honoPath(routes.getRevocationList);
  const duration = deps.metrics.httpDuration.labels("GET", route);
  return (req, res) => {
    if (req.method !== "GET" || req.url !== routes.getRevocationList.path) return false;
    const list = deps.revocationLists.inMemory();
    if (!list) return false;
    const started = performance.now();
    const headers = { ...crlHeaders(list), "X-Request-Id": randomUUID() };
    const unchanged = matchesEtag(req.headers["if-none-match"], list.etag);
    if (unchanged) {
      res.writeHead(304, headers);
      res.end();
    } else {
      res.writeHead(200, { ...headers, "Content-Type": "application/json", "Content-Length": String(list.body.length) });
      res.end(list.body);
    }
    deps.metrics.httpRequests.inc({ method: "GET", route, status: unchanged ? "304" : "200" });
    duration.observe((performance.now() - started) / 1000);
    return true;
  };
}
