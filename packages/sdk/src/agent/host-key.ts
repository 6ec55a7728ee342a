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

/**
 * Proof that this host holds the key its refresh token is bound to: a compact
 * JWS (ES256) over the token's SHA-256 thumbprint. The key stays here; only the
 * signature travels.
 */
export async function refreshProof(privateKeyPem: string, refreshToken: string): Promise<string> {
  const subtle = globalThis.crypto.subtle;
  const key = await subtle.importKey("pkcs8", fromPem(privateKeyPem), ECDSA_P256, false, ["sign"]);
  const encoder = new TextEncoder();
  const ath = base64url(await subtle.digest("SHA-256", encoder.encode(refreshToken)));
  const signingInput = `${base64url(encoder.encode(JSON.stringify({ alg: "ES256", typ: "muster-refresh-proof+jws" })))}.${base64url(encoder.encode(JSON.stringify({ ath })))}`;
  // WebCrypto's ECDSA signature is r || s, which is exactly JWS's ES256 encoding.
  const signature = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, encoder.encode(signingInput));
  return `${signingInput}.${base64url(signature)}`;
}

function base64url(bytes: ArrayBuffer | Uint8Array): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromPem(text: string): Uint8Array {
  const base64 = text.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function pem(der: ArrayBuffer, label: string): string {
  const base64 = btoa(String.fromCharCode(...new Uint8Array(der))).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}
