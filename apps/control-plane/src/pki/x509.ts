// @peculiar/x509 decorates its ASN.1 classes and needs the metadata polyfill loaded first;
// every use in the control plane goes through this module so the order always holds.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

// Node's webcrypto is the DOM Crypto the library types expect; our lib settings do not include the DOM.
x509.cryptoProvider.set(webcrypto as never);

export { x509 };

/** ECDSA P-256: the CA's key type and the default for host keys. */
export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
export const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

/** The SPIFFE-style URI SANs that name each side of an mTLS connection. */
export const CONTROL_PLANE_URI = "spiffe://muster/control-plane";
export const hostUri = (hostId: string) => `spiffe://muster/host/${hostId}`;

/** PEM with OpenSSL's labels (the library writes "CRL" where OpenSSL, and so Node's TLS, wants "X509 CRL"). */
export function toPem(der: ArrayBuffer, label: "PRIVATE KEY" | "X509 CRL"): string {
  const base64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

export async function sha256Fingerprint(cert: x509.X509Certificate): Promise<string> {
  return Buffer.from(await cert.getThumbprint("SHA-256")).toString("hex");
}
