import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as never);

export const X509Crl = x509.X509Crl;

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;

export interface TestCa {
  cert: x509.X509Certificate;
  certPem: string;
  keyPem: string;
  keys: webcrypto.CryptoKeyPair;
}

function pem(der: ArrayBuffer): string {
  return `-----BEGIN PRIVATE KEY-----\n${Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

/** A CA the test holds the key of: given to the control plane as files, or a foreign one. */
export async function makeCa(name = "Test CA"): Promise<TestCa> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    keys,
    signingAlgorithm: SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, certPem: cert.toString("pem"), keyPem: pem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)), keys };
}

let serial = 0x1000;

/** A leaf certificate and its key, signed by `ca`, naming `uri`; valid now unless told otherwise. */
export async function issue(ca: TestCa, uri: string, validity: { notBefore?: Date; notAfter?: Date } = {}) {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16),
    subject: "CN=test leaf",
    issuer: ca.cert.subject,
    notBefore: validity.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: validity.notAfter ?? new Date(Date.now() + 3600_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: uri }, { type: "ip", value: "127.0.0.1" }]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { cert: cert.toString("pem"), key: pem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) };
}

/** `ca`'s revocation list naming `serials` (hex), as the control plane makes one. */
export async function revocationList(ca: TestCa, serials: string[]): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + 3600_000),
    entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date() })),
    signingAlgorithm: SHA256,
    signingKey: ca.keys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
  });
  return `-----BEGIN X509 CRL-----\n${Buffer.from(crl.rawData).toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END X509 CRL-----\n`;
}
