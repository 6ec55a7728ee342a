import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Config } from "./config.js";

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** `sha256/<base64>` of the leaf certificate's public key (SPKI), as agents pin it. */
  pin: string;
}

/**
 * The pin of a certificate: the SHA-256 of its SubjectPublicKeyInfo (the HPKP
 * form). Pinning the key rather than the whole certificate lets an operator
 * renew the certificate with the same key without re-pinning every agent.
 */
export function certificatePin(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: "spki", format: "der" });
  return `sha256/${createHash("sha256").update(spki).digest("base64")}`;
}

/** Reads the TLS files named by the configuration; null when the control plane serves plain HTTP. */
export function loadServerTls(config: Pick<Config, "tlsCertFile" | "tlsKeyFile">): ServerTls | null {
  if (config.tlsCertFile === null || config.tlsKeyFile === null) return null;
  const cert = readFileSync(config.tlsCertFile);
  const key = readFileSync(config.tlsKeyFile);
  // The first certificate of the file is the one the server presents (the rest is its chain).
  return { cert, key, pin: certificatePin(new X509Certificate(cert)) };
}
