import { createPublicKey, KeyObject, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import type { RandomBytes } from "../lib/clock.js";
import { signInTurns, signRevocationList, type CrlSigner, type RevokedEntry } from "./crl.js";
import { CONTROL_PLANE_URI, ECDSA_P256, ECDSA_SHA256, hostUri, sha256Fingerprint, toPem, x509 } from "./x509.js";

type CryptoKey = webcrypto.CryptoKey;

/** AlgorithmIdentifier DER: ecdsa-with-SHA256 (1.2.840.10045.4.3.2) and Ed25519 (1.3.101.112), no parameters. */
const ECDSA_SHA256_ALGORITHM = Buffer.from("300a06082a8648ce3d040302", "hex");
const ED25519_ALGORITHM = Buffer.from("300506032b6570", "hex");
const CA_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;
/** Certificates start a little in the past, so a host whose clock lags does not see them as not yet valid. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface IssuedCertificate {
  pem: string;
  serial: string;
  fingerprint: string;
  expiresAt: Date;
}

/**
 * One certificate authority of the control plane: it signs host certificates
 * from their CSRs, the control plane's own client certificates, and its
 * revocation list. `CaKeyring` holds the one that signs now and, during a
 * rotation, the one being replaced.
 */
export class CertificateAuthority {
  private constructor(
    /** `ca` for the first one (and for one given as files), `ca-…` for those made by rotations. */
    readonly id: string,
    /** Null for a CA given as files. */
    readonly createdAt: Date | null,
    readonly certificate: x509.X509Certificate,
    private readonly key: CryptoKey,
    readonly fingerprint: string,
  ) {}

  get certificatePem(): string {
    return this.certificate.toString("pem");
  }

  /**
   * A CA certificate and its key (PKCS#8), checked to belong together and to
   * be of a kind we sign with; `source` names where they came from in errors.
   */
  static async fromKey(id: string, createdAt: Date | null, certificatePem: string, key: KeyObject, source: string): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(certificatePem);
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    if (!basic?.ca) throw new Error(`the CA certificate from ${source} is not a CA certificate (basicConstraints cA is not set)`);
    const spki = createPublicKey(key).export({ type: "spki", format: "der" });
    if (!Buffer.from(cert.publicKey.rawData).equals(spki)) throw new Error(`the CA key from ${source} does not match its certificate`);
    const algorithm =
      key.asymmetricKeyType === "ed25519" ? { name: "Ed25519" } : key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1" ? ECDSA_P256 : null;
    if (!algorithm) throw new Error(`the CA key from ${source} must be ECDSA P-256 or Ed25519`);
    const pkcs8 = key.export({ type: "pkcs8", format: "der" });
    const signingKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, algorithm, false, ["sign"]);
    return new CertificateAuthority(id, createdAt, cert, signingKey, await sha256Fingerprint(cert));
  }

  /** A client+server certificate naming the host by its SPIFFE URI and, when it is an IP or DNS name, its address. */
  async issueHostCertificate(input: { hostId: string; address: string; publicKey: x509.PublicKey; now: Date; ttlS: number; random: RandomBytes }) {
    const names: x509.JsonGeneralName[] = [{ type: "url", value: hostUri(input.hostId) }];
    const addressName = generalNameOf(input.address);
    if (addressName) names.push(addressName);
    return this.issue({
      subject: `CN=${input.hostId}`,
      publicKey: input.publicKey,
      names,
      usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
      now: input.now,
      ttlS: input.ttlS,
      random: input.random,
    });
  }

  /** The control plane's own client certificate and key, for calling agents; never stored, made per process. */
  async issueControlPlaneCertificate(now: Date, ttlS: number, random: RandomBytes): Promise<IssuedCertificate & { keyPem: string }> {
    const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const publicKey = new x509.PublicKey(await webcrypto.subtle.exportKey("spki", keys.publicKey));
    const issued = await this.issue({
      subject: "CN=muster control plane",
      publicKey,
      names: [{ type: "url", value: CONTROL_PLANE_URI }],
      usages: [x509.ExtendedKeyUsage.clientAuth],
      now,
      ttlS,
      random,
    });
    return { ...issued, keyPem: toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY") };
  }

  /** A CRL listing the given serials, valid until `nextUpdate` (see crl.ts: built in slices, however long). */
  async revocationList(revoked: readonly RevokedEntry[], now: Date, nextUpdate: Date): Promise<string> {
    return signRevocationList(await this.crlSigner(), revoked, now, nextUpdate);
  }

  private async crlSigner(): Promise<CrlSigner> {
    const ed25519 = this.key.algorithm.name === "Ed25519";
    return {
      issuer: new Uint8Array(this.certificate.subjectName.toArrayBuffer()),
      authorityKeyIdentifier: new Uint8Array((await x509.AuthorityKeyIdentifierExtension.create(this.certificate)).rawData),
      algorithm: ed25519 ? ED25519_ALGORITHM : ECDSA_SHA256_ALGORITHM,
      sign: (tbs) => signInTurns(KeyObject.from(this.key), tbs),
    };
  }

  private async issue(input: {
    subject: string;
    publicKey: x509.PublicKey;
    names: x509.JsonGeneralName[];
    usages: string[];
    now: Date;
    ttlS: number;
    random: RandomBytes;
  }): Promise<IssuedCertificate> {
    const serial = newSerial(input.random);
    const expiresAt = new Date(input.now.getTime() + input.ttlS * 1000);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: input.subject,
      issuer: this.certificate.subject,
      notBefore: new Date(input.now.getTime() - BACKDATE_MS),
      notAfter: expiresAt,
      publicKey: input.publicKey,
      signingKey: this.key,
      signingAlgorithm: signingAlgorithmOf(this.key),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(input.usages),
        new x509.SubjectAlternativeNameExtension(input.names, true),
        await x509.SubjectKeyIdentifierExtension.create(input.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate),
      ],
    });
    // Millisecond precision is lost in the certificate; report the time it really carries.
    return { pem: cert.toString("pem"), serial, fingerprint: await sha256Fingerprint(cert), expiresAt: cert.notAfter };
  }
}

/**
 * A new self-signed CA (ECDSA P-256, ten years): its certificate and its PKCS#8
 * key, to be sealed before it is stored. `name` is its common name: two CAs
 * trusted at once during a rotation must not share one, or TLS could not tell
 * whose revocation list is whose.
 */
export async function generateCertificateAuthority(name: string, now: Date, random: RandomBytes): Promise<{ certificate: string; privateKeyDer: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(random),
    name: `CN=${name}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: cert.toString("pem"), privateKeyDer: Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) };
}

function signingAlgorithmOf(key: CryptoKey) {
  return key.algorithm.name === "Ed25519" ? { name: "Ed25519" } : ECDSA_SHA256;
}

/** 128 random bits, positive (top bit clear) and never starting with a zero byte, as RFC 5280 asks. */
function newSerial(random: RandomBytes): string {
  const bytes = random(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

/** The address's host part as a SAN: an IP address or a DNS name (`IP:PORT`, `[IPv6]:PORT`, `NAME:PORT`). */
function generalNameOf(address: string): x509.JsonGeneralName | null {
  const host = address.slice(0, address.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
  if (isIP(host)) return { type: "ip", value: host };
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host) ? { type: "dns", value: host } : null;
}
