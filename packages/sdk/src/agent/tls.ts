import { createHash, X509Certificate } from "node:crypto";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { MusterError } from "../errors.js";
import type { FetchLike } from "../transport.js";
import { httpFetch } from "./http.js";

/** The control plane presented a certificate whose key is not the pinned one. */
export class CertificatePinError extends MusterError {
  override name = "CertificatePinError";
  constructor(
    readonly expected: string,
    readonly presented: string,
  ) {
    super(`the control plane's certificate has key pin ${presented}, but ${expected} is pinned`);
  }
}

/** `sha256/<base64>` of a certificate's public key (SPKI): the form the control plane hands out at registration. */
export function certificatePin(der: Buffer): string {
  const spki = new X509Certificate(der).publicKey.export({ type: "spki", format: "der" });
  return `sha256/${createHash("sha256").update(spki).digest("base64")}`;
}

/** The pin error behind a failed request or dial, if that is why it failed. */
export function pinErrorOf(error: unknown): CertificatePinError | null {
  for (let cause = error; cause instanceof Error; cause = cause.cause) if (cause instanceof CertificatePinError) return cause;
  return null;
}

export interface PinnedTls {
  /** TLS options for a `ws` client (and any `tls.connect`). */
  options: { ca?: string | Buffer; checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined };
  fetch: FetchLike;
}

/**
 * TLS towards the control plane: the usual verification (system CAs, or `ca`
 * for a private one, and the host name), then, once a pin is known, the
 * certificate's key must match it. The pin is asked for on every new
 * connection, so one learnt at registration applies from the next connection on.
 */
export function pinnedTls(pin: () => string | null | undefined, ca?: string | Buffer): PinnedTls {
  const options = {
    ...(ca === undefined ? {} : { ca }),
    checkServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
      const mismatch = checkServerIdentity(host, cert);
      if (mismatch) return mismatch;
      const expected = pin();
      if (!expected) return undefined;
      const presented = certificatePin(cert.raw);
      return presented === expected ? undefined : new CertificatePinError(expected, presented);
    },
  };
  return { options, fetch: httpFetch(options) };
}
