import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { revocationLists } from "../services/host-certificates.js";

export function pkiRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getCertificateAuthority, async (c) => {
    const { active } = c.get("deps").ca;
    return c.json({ certificate: c.get("deps").ca.bundlePem, fingerprint_sha256: active.fingerprint, expires_at: active.certificate.notAfter.toISOString() }, 200);
  });
  mount(app, routes.getRevocationList, async (c) => {
    const list = await revocationLists(c.get("deps").db, c.get("deps"));
    return c.json({ crl: list.crls.join(""), this_update: list.thisUpdate.toISOString(), next_update: list.nextUpdate.toISOString() }, 200);
  });
}
