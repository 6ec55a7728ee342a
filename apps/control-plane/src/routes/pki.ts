import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";
import { revocationList } from "../services/host-certificates.js";

export function pkiRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getCertificateAuthority, async (c) => {
    const { ca } = c.get("deps");
    return c.json({ certificate: ca.certificatePem, fingerprint_sha256: ca.fingerprint, expires_at: ca.certificate.notAfter.toISOString() }, 200);
  });
  mount(app, routes.getRevocationList, async (c) => {
    const list = await revocationList(c.get("deps").db, c.get("deps"));
    return c.json({ crl: list.crl, this_update: list.thisUpdate.toISOString(), next_update: list.nextUpdate.toISOString() }, 200);
  });
}
