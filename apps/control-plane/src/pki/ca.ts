import { createPrivateKey, createPublicKey, KeyObject, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { certificateAuthority } from "../db/schema/index.js";
import type { Clock, RandomBytes } from "../lib/clock.js";
import { signInTurns, signRevocationList, type CrlSigner, type RevokedEntry } from "./crl.js";
import { CONTROL_PLANE_URI, ECDSA_P256, ECDSA_SHA256, hostUri, sha256Fingerprint, toPem, x509 } from "./x509.js";

type CryptoKey = webcrypto.CryptoKey;

const CA_ROW_ID = "ca";
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
 * The control plane's certificate authority: it signs host certificates from
 * their CSRs, the control plane's own client certificate, and the revocation
 * list. Generated on first start and kept in the database (every process
 * agrees on the first one written), or given as PEM files.
 */
export class CertificateAuthority {
  constructor(
    readonly certificate: x509.X509Certificate,
    private readonly key: CryptoKey,
    readonly fingerprint: string,
  ) {}

  get certificatePem(): string {
    return this.certificate.toString("pem");
  }

  static async load(db: Db, clock: Clock, random: RandomBytes, config: Pick<Config, "caCertFile" | "caKeyFile">): Promise<CertificateAuthority> {
    if (config.caCertFile && config.caKeyFile) {
      return fromPem(readFileSync(config.caCertFile, "utf8"), readFileSync(config.caKeyFile, "utf8"), config.caCertFile);
    }
    const [existing] = await db.select().from(certificateAuthority);
    if (existing) return fromPem(existing.certificate, existing.privateKey, "the database");
    const generated = await generate(clock.now(), random);
    await db.insert(certificateAuthority).values({ id: CA_ROW_ID, ...generated, createdAt: clock.now() }).onConflictDoNothing();
    const [row] = await db.select().from(certificateAuthority);
    return fromPem(row!.certificate, row!.privateKey, "the database");
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

async function generate(now: Date, random: RandomBytes): Promise<{ certificate: string; privateKey: string }> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(random),
    name: "CN=Muster host CA",
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
  return { certificate: cert.toString("pem"), privateKey: toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY") };
}

/** Loads a CA certificate and its PKCS#8 key, checking they belong together and the key is of a kind we sign with. */
async function fromPem(certificatePem: string, keyPem: string, source: string): Promise<CertificateAuthority> {
  const cert = new x509.X509Certificate(certificatePem);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new Error(`the CA certificate from ${source} is not a CA certificate (basicConstraints cA is not set)`);
  const nodeKey = createPrivateKey(keyPem);
  const spki = createPublicKey(nodeKey).export({ type: "spki", format: "der" });
  if (!Buffer.from(cert.publicKey.rawData).equals(spki)) throw new Error(`the CA key from ${source} does not match its certificate`);
  const algorithm = nodeKey.asymmetricKeyType === "ed25519" ? { name: "Ed25519" } : nodeKey.asymmetricKeyType === "ec" && nodeKey.asymmetricKeyDetails?.namedCurve === "prime256v1" ? ECDSA_P256 : null;
  if (!algorithm) throw new Error(`the CA key from ${source} must be ECDSA P-256 or Ed25519`);
  const pkcs8 = nodeKey.export({ type: "pkcs8", format: "der" });
  const key = await webcrypto.subtle.importKey("pkcs8", pkcs8, algorithm, false, ["sign"]);
  return new CertificateAuthority(cert, key, await sha256Fingerprint(cert));
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
