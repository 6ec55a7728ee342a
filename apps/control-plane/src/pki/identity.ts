import type { Clock, RandomBytes } from "../lib/clock.js";
import type { CertificateAuthority, IssuedCertificate } from "./ca.js";

const LIFETIME_S = 24 * 3600;

/**
 * This process's client certificate for calling agents. Made on first use and
 * again once half its lifetime has gone, so it never expires mid-call; never
 * stored (each process has its own).
 */
export class ControlPlaneIdentity {
  private current: Promise<IssuedCertificate & { keyPem: string }> | null = null;
  private renewAt = 0;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
    private readonly random: RandomBytes,
  ) {}

  async get(): Promise<{ cert: string; key: string; ca: string }> {
    const now = this.clock.now();
    if (!this.current || now.getTime() >= this.renewAt) {
      this.renewAt = now.getTime() + (LIFETIME_S * 1000) / 2;
      this.current = this.ca.issueControlPlaneCertificate(now, LIFETIME_S, this.random);
      this.current.catch(() => (this.current = null));
    }
    const issued = await this.current;
    return { cert: issued.pem, key: issued.keyPem, ca: this.ca.certificatePem };
  }
}
