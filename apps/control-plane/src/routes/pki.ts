import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { header } from "../http/node-request.js";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";

/** Caches may keep the list but must ask again each time; an unchanged list costs a 304. */
const CRL_CACHE_CONTROL = "public, no-cache";

export function pkiRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getCertificateAuthority, async (c) => {
    const { ca } = c.get("deps");
    return c.json({ certificate: ca.certificatePem, fingerprint_sha256: ca.fingerprint, expires_at: ca.certificate.notAfter.toISOString() }, 200);
  });
  // Anyone may ask, so the answer is made once per list (see revocation-lists.ts) and only sent here.
  mount(app, routes.getRevocationList, async (c) => {
    const list = await c.get("deps").revocationLists.current();
    const headers = { ETag: list.etag, "Cache-Control": CRL_CACHE_CONTROL };
    const known = header(c, "if-none-match");
    if (known !== undefined && known.split(",").some((tag) => tag.trim().replace(/^W\//, "") === list.etag || tag.trim() === "*")) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(list.body, { status: 200, headers: { ...headers, "Content-Type": "application/json" } });
  });
}
