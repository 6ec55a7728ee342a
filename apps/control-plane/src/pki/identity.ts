import type { Clock, RandomBytes } from "../lib/clock.js";
import type { CaKeyring } from "./authorities.js";
import type { CertificateAuthority, IssuedCertificate } from "./ca.js";

const LIFETIME_S = 24 * 3600;

interface Held {
  issued: Promise<IssuedCertificate & { keyPem: string }>;
  renewAt: number;
}

/**
 * This process's client certificates for calling agents, one per trusted CA
 * (during a CA rotation a host that has not picked up the new CA yet is
 * called with the previous one's). Each is made on first use and again once
 * half its lifetime has gone, so it never expires mid-call; never stored
 * (each process has its own); dropped once its CA is no longer trusted.
 */
export class ControlPlaneIdentity {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly keyring: CaKeyring,
    private readonly clock: Clock,
    private readonly random: RandomBytes,
  ) {}

  async get(ca: CertificateAuthority): Promise<{ cert: string; key: string }> {
    for (const id of this.held.keys()) if (!this.keyring.find(id)) this.held.delete(id);
    const now = this.clock.now();
    let held = this.held.get(ca.id);
    if (!held || now.getTime() >= held.renewAt) {
      const issued = ca.issueControlPlaneCertificate(now, LIFETIME_S, this.random);
      const fresh: Held = { issued, renewAt: now.getTime() + (LIFETIME_S * 1000) / 2 };
      this.held.set(ca.id, fresh);
      issued.catch(() => this.held.get(ca.id) === fresh && this.held.delete(ca.id));
      held = fresh;
    }
    const issued = await held.issued;
    return { cert: issued.pem, key: issued.keyPem };
  }
}
