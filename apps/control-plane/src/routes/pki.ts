import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { crlHeaders, matchesEtag } from "../http/crl-lane.js";
import { header } from "../http/node-request.js";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";

export function pkiRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getCertificateAuthority, async (c) => {
    const { active } = c.get("deps").ca;
    return c.json({ certificate: c.get("deps").ca.bundlePem, fingerprint_sha256: active.fingerprint, expires_at: active.certificate.notAfter.toISOString() }, 200);
  });
  // Anyone may ask, so the answer is made once per list (revocation-lists.ts) and only sent here; over a socket the
  // list in memory is usually sent before the app is reached (http/crl-lane.ts).
  mount(app, routes.getRevocationList, async (c) => {
    const list = await c.get("deps").revocationLists.current();
    if (matchesEtag(header(c, "if-none-match"), list.etag)) return new Response(null, { status: 304, headers: crlHeaders(list) });
    return new Response(list.body, { status: 200, headers: { ...crlHeaders(list), "Content-Type": "application/json" } });
  });
}
