import type { IncomingMessage } from "node:http";
import type { Context } from "hono";

/**
 * Whether the request carries a body. Under @hono/node-server the answer comes
 * from Node's already-parsed headers: touching `c.req.raw` there would build a
 * full Request for every call, which costs more than a heartbeat itself. Any
 * other caller (tests, other runtimes) hands us a real Request to ask.
 */
export function declaresBody(c: Context): boolean {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) return c.req.raw.body !== null;
  const length = incoming.headers["content-length"];
  return (length !== undefined && length !== "0") || incoming.headers["transfer-encoding"] !== undefined;
}
