import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Context } from "hono";

/**
 * Request facts read without building a web Request. Under @hono/node-server,
 * `c.req.header()` and `c.req.raw` make it construct a full Request and Headers
 * for the call, which costs more than a heartbeat itself; Node has already
 * parsed the headers into `incoming`. Any other caller (tests, other runtimes)
 * hands us a real Request, which we ask instead.
 */
function incoming(c: Context): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/** One request header (`name` in lower case). */
export function header(c: Context, name: string): string | undefined {
  const node = incoming(c);
  if (!node) return c.req.header(name);
  const value = node.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** Whether the request carries a body. */
export function declaresBody(c: Context): boolean {
  const node = incoming(c);
  return node ? headersDeclareBody(node.headers) : c.req.raw.body !== null;
}

/** Whether Node's parsed headers announce a body (sized or chunked). */
export function headersDeclareBody(headers: IncomingHttpHeaders): boolean {
  const length = headers["content-length"];
  return (length !== undefined && length !== "0") || headers["transfer-encoding"] !== undefined;
}
