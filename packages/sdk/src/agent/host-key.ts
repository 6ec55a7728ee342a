// @peculiar/x509 decorates its ASN.1 classes and needs the metadata polyfill loaded before it.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** A key pair made on this host and the CSR that asks the control plane to certify it. */
export interface HostKeyRequest {
  /** PKCS#8 PEM. Saved with the credentials; never sent anywhere. */
  privateKeyPem: string;
  /** PKCS#10 PEM, naming nothing: the control plane decides the names. */
  csrPem: string;
}

/** A fresh ECDSA P-256 key pair and its CSR, made with the platform's WebCrypto. */
export async function newHostKey(): Promise<HostKeyRequest> {
  const crypto = globalThis.crypto;
  x509.cryptoProvider.set(crypto as never);
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { privateKeyPem: pem(pkcs8, "PRIVATE KEY"), csrPem: csr.toString("pem") };
}

function pem(der: ArrayBuffer, label: string): string {
  const base64 = btoa(String.fromCharCode(...new Uint8Array(der))).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}
