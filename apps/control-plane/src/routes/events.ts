import type { Hono } from "hono";
import { LAST_EVENT_ID_HEADER, routes } from "@muster/contract";
import type { AppEnv } from "../http/env.js";
import { mount } from "../http/mount.js";
import { header } from "../http/node-request.js";
import { parseEventId, scopedFilter } from "../services/events.js";

const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-store",
  // Proxies that buffer responses (nginx) would hold events back.
  "x-accel-buffering": "no",
  "transfer-encoding": "chunked",
};

export function eventRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.streamEvents, async (c, { query }) => {
    // A reconnecting client sends Last-Event-ID; its URL may still carry the ?after= it first opened with.
    const lastEventId = header(c, LAST_EVENT_ID_HEADER)?.trim();
    const after = lastEventId ? parseEventId(lastEventId, "Last-Event-ID") : query.after === undefined ? null : parseEventId(query.after, "after");
    const actor = c.get("actor");
    const subscriber = await c.get("deps").events.open(scopedFilter(actor, query), actor.keyId, after);
    return c.body(subscriber.stream, 200, STREAM_HEADERS);
  });
}
