import { webcrypto } from "node:crypto";
import { CompactSign } from "jose";
import { REFRESH_PROOF_TYP, refreshTokenThumbprint } from "../../src/pki/refresh-proof.js";
import { ECDSA_P256, ECDSA_SHA256, toPem, x509 } from "../../src/pki/x509.js";

type KeyKind = "ECDSA" | "Ed25519";

const params = (kind: KeyKind) => (kind === "Ed25519" ? { name: "Ed25519" } : ECDSA_P256);
const signing = (kind: KeyKind) => (kind === "Ed25519" ? { name: "Ed25519" } : ECDSA_SHA256);

export async function keyPair(kind: KeyKind = "ECDSA"): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(params(kind), true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

export async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
}

/** A self-signed CA other than the control plane's (given as files, or a foreign CA). */
export async function makeCa(kind: KeyKind) {
  const keys = await keyPair(kind);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=Test CA",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    keys,
    signingAlgorithm: signing(kind),
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  return { keys, certificate: cert, certificatePem: cert.toString("pem"), keyPem: await keyPem(keys) };
}

/** A CSR as an agent makes it (no names), or with what a hostile one might add. */
export async function makeCsr(keys: webcrypto.CryptoKeyPair, kind: KeyKind = "ECDSA", extra: { name?: string; extensions?: x509.Extension[] } = {}) {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: signing(kind), ...extra });
  return csr.toString("pem");
}

/** A proof of `keys` for refreshing with `refreshToken`, as the agent makes it. */
export async function refreshProof(keys: webcrypto.CryptoKeyPair, refreshToken: string, options: { typ?: string; alg?: "ES256" | "EdDSA" } = {}) {
  const payload = new TextEncoder().encode(JSON.stringify({ ath: refreshTokenThumbprint(refreshToken) }));
  return new CompactSign(payload)
    .setProtectedHeader({ alg: options.alg ?? "ES256", typ: options.typ ?? REFRESH_PROOF_TYP })
    .sign(keys.privateKey);
}
