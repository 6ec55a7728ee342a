import { createHash, generateKeyPair, sign } from "node:crypto";
import { promisify } from "node:util";

/** A key pair made on this host and the CSR that asks the control plane to certify it. */
export interface HostKeyRequest {
  /** PKCS#8 PEM. Saved with the credentials; never sent anywhere. */
  privateKeyPem: string;
  /** PKCS#10 PEM, naming nothing: the control plane decides the names. */
  csrPem: string;
}

/** AlgorithmIdentifier { ecdsa-with-SHA256 } (RFC 5758 §3.2: no parameters). */
const ECDSA_WITH_SHA256 = Buffer.from("300a06082a8648ce3d040302", "hex");

/**
 * A fresh ECDSA P-256 key pair and its CSR. The CSR is the smallest PKCS#10
 * request (RFC 2986): version 0, an empty subject, the public key, no
 * attributes, signed with the key. Encoded here rather than with an X.509
 * library: that library and its ASN.1 stack cost the agent ~10 MiB of resident
 * memory for these few bytes (docs/benchmarks.md). The control plane parses it
 * with @peculiar/x509, and the SDK's tests check it the same way.
 */
export async function newHostKey(): Promise<HostKeyRequest> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)("ec", { namedCurve: "P-256" });
  const info = der(0x30, der(0x02, Buffer.of(0)), der(0x30), publicKey.export({ type: "spki", format: "der" }), der(0xa0));
  const signature = sign("sha256", info, privateKey);
  const csr = der(0x30, info, ECDSA_WITH_SHA256, der(0x03, Buffer.of(0), signature));
  return { privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string, csrPem: pem(csr, "CERTIFICATE REQUEST") };
}

/**
 * Proof that this host holds the key its refresh token is bound to: a compact
 * JWS (ES256) over the token's SHA-256 thumbprint. The key stays here; only the
 * signature travels.
 */
export async function refreshProof(privateKeyPem: string, refreshToken: string): Promise<string> {
  const ath = createHash("sha256").update(refreshToken).digest("base64url");
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signingInput = `${part({ alg: "ES256", typ: "muster-refresh-proof+jws" })}.${part({ ath })}`;
  // JWS's ES256 signature is r || s (RFC 7518 §3.4), not DER.
  const signature = sign("sha256", Buffer.from(signingInput), { key: privateKeyPem, dsaEncoding: "ieee-p1363" });
  return `${signingInput}.${signature.toString("base64url")}`;
}

/** One DER element: tag, definite length, contents. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const length: number[] = [];
  for (let rest = body.length; rest > 0; rest = Math.floor(rest / 256)) length.unshift(rest % 256);
  const head = body.length < 0x80 ? [body.length] : [0x80 | length.length, ...length];
  return Buffer.concat([Buffer.of(tag, ...head), body]);
}

function pem(der: Buffer, label: string): string {
  const base64 = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}
