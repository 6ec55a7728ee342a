import type { Context } from "hono";

/** A Content-Security-Policy from its directives, each a list of sources. */
export function contentSecurityPolicy(directives: Record<string, string[]>): string {
  return Object.entries(directives)
    .map(([name, sources]) => [name, ...sources].join(" "))
    .join("; ");
}

/**
 * What every page the control plane serves to a browser (the API reference,
 * the console) carries: its CSP, and no framing, no type sniffing, no referrer
 * (an address may hold a host ID, and a page's links go nowhere else anyway).
 */
export function setPageHeaders(c: Context, csp: string): void {
  c.header("Content-Security-Policy", csp);
  c.header("X-Frame-Options", "DENY");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
}

/** For a file a page loads (a script, a stylesheet): opened on its own, it may run nothing. */
export const ASSET_POLICY = contentSecurityPolicy({ "default-src": ["'none'"], "frame-ancestors": ["'none'"] });
