import type { Hono } from "hono";
import { routes } from "@muster/contract";
import { mount } from "../http/mount.js";
import type { AppEnv } from "../http/env.js";

export function pkiRoutes(app: Hono<AppEnv>): void {
  mount(app, routes.getCertificateAuthority, async (c) => {
    const { ca } = c.get("deps");
    return c.json({ certificate: ca.certificatePem, fingerprint_sha256: ca.fingerprint, expires_at: ca.certificate.notAfter.toISOString() }, 200);
  });
}
