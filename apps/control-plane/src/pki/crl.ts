import { createSign, sign as signOnce, type KeyObject } from "node:crypto";
import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * A CRL (RFC 5280 §5) encoded by hand, in slices. @peculiar/x509's generator
 * builds the whole list as one ASN.1 object graph: 10,000 entries took 3.8 s
 * of event loop and 50,000 nearly two minutes. The list's shape is fixed and
 * small (serial and date per entry, two extensions), so we write its DER
 * directly, yielding between slices of entries so no slice holds the event
 * loop for more than a few milliseconds.
 */

export interface RevokedEntry {
  serial: string;
  revokedAt: Date;
}

export interface CrlSigner {
  /** The issuer's Name, DER, exactly as in its certificate's subject. */
  issuer: Uint8Array;
  /** The Authority Key Identifier extension (DER of the whole Extension). */
  authorityKeyIdentifier: Uint8Array;
  /** AlgorithmIdentifier, DER. */
  algorithm: Uint8Array;
  /** Signs the TBSCertList; returns the signature as X.509 carries it (ECDSA: DER SEQUENCE of r and s). */
  sign(tbs: Uint8Array): Promise<Uint8Array>;
}

/** Entries encoded, bytes hashed or base64 lines written per turn of the event loop. */
const SLICE = 2_000;
const BYTES_PER_TURN = 256 * 1024;
/** 48 bytes are one 64-character PEM line. */
const PEM_BYTES_PER_TURN = 48 * 2_000;

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  return tlvOf(tag, content);
}

/** A TLV around many parts (an array, not arguments: a CRL has more entries than a call may take arguments). */
function tlvOf(tag: number, content: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const sequence = (...content: Uint8Array[]) => tlv(0x30, ...content);


/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5), to the second. */
function time(date: Date): Buffer {
  const { tag, text } = timeText(date);
  return tlv(tag, Buffer.from(text, "latin1"));
}

/** The CRL Number extension (RFC 5280 §5.2.3: MUST be present, increasing): here the thisUpdate time in ms. */
function crlNumber(n: number): Buffer {
  const value = tlv(0x02, Buffer.from(serialHex(n.toString(16)), "hex"));
  return sequence(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x14]), tlv(0x04, value));
}

/** Encodes and signs the list; resolves to PEM ("X509 CRL", the label OpenSSL and Node's TLS read). */
export async function signRevocationList(signer: CrlSigner, revoked: readonly RevokedEntry[], thisUpdate: Date, nextUpdate: Date): Promise<string> {
  // An empty list is left out rather than written empty (RFC 5280 §5.1.2.6).
  const list = revoked.length > 0 ? await encodeEntries(revoked) : null;
  const tbs = sequence(
    tlv(0x02, Buffer.from([1])),
    signer.algorithm,
    signer.issuer,
    time(thisUpdate),
    time(nextUpdate),
    ...(list ? [list] : []),
    tlv(0xa0, sequence(signer.authorityKeyIdentifier, crlNumber(thisUpdate.getTime()))),
  );
  const signature = await signer.sign(tbs);
  await nextTurn();
  return pemInTurns(sequence(tbs, signer.algorithm, tlv(0x03, Buffer.from([0]), signature)), "X509 CRL");
}

/** A serial's INTEGER content as hex: no leading zero bytes, one added when the top bit is set. */
function serialHex(serial: string): string {
  const even = serial.length % 2 ? `0${serial}` : serial;
  const trimmed = even.replace(/^(00)+(?=..)/, "").toLowerCase();
  return parseInt(trimmed[0]!, 16) >= 8 ? `00${trimmed}` : trimmed;
}

function timeText(date: Date): { tag: number; text: string } {
  const digits = date.toISOString().slice(0, 19).replace(/[-:T]/g, "");
  return date.getUTCFullYear() < 2050 ? { tag: 0x17, text: `${digits.slice(2)}Z` } : { tag: 0x18, text: `${digits}Z` };
}

/**
 * revokedCertificates: SEQUENCE OF SEQUENCE { serial INTEGER, revocationDate
 * Time }, written straight into one buffer a slice per turn (small buffers per
 * entry cost more in garbage collection than in encoding).
 */
async function encodeEntries(revoked: readonly RevokedEntry[]): Promise<Buffer> {
  const serials: string[] = [];
  let size = 0;
  for (let i = 0; i < revoked.length; i++) {
    if (i > 0 && i % SLICE === 0) await nextTurn();
    const hex = serialHex(revoked[i]!.serial);
    // RFC 5280 §4.1.2.2: at most 20 octets, so every length here fits in one byte.
    if (hex.length > 42) throw new Error(`serial ${revoked[i]!.serial} is longer than 20 octets`);
    serials.push(hex);
    size += 2 + 2 + hex.length / 2 + 2 + (revoked[i]!.revokedAt.getUTCFullYear() < 2050 ? 13 : 15);
  }
  await nextTurn();
  const header = Buffer.concat([Buffer.from([0x30]), length(size)]);
  const out = Buffer.allocUnsafe(header.length + size);
  let offset = header.copy(out);
  for (let i = 0; i < revoked.length; i++) {
    if (i > 0 && i % SLICE === 0) await nextTurn();
    const hex = serials[i]!;
    const { tag, text } = timeText(revoked[i]!.revokedAt);
    out[offset++] = 0x30;
    out[offset++] = 2 + hex.length / 2 + 2 + text.length;
    out[offset++] = 0x02;
    out[offset++] = hex.length / 2;
    offset += out.write(hex, offset, "hex");
    out[offset++] = tag;
    out[offset++] = text.length;
    offset += out.write(text, offset, "latin1");
  }
  return out;
}

async function pemInTurns(der: Buffer, label: string): Promise<string> {
  const chunks: string[] = [];
  for (let offset = 0; offset < der.length; offset += PEM_BYTES_PER_TURN) {
    if (offset > 0) await nextTurn();
    chunks.push(der.subarray(offset, offset + PEM_BYTES_PER_TURN).toString("base64").replace(/(.{64})/g, "$1\n"));
  }
  const body = chunks.join("").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/**
 * Signs with the key, hashing a slice per turn: ECDSA over SHA-256 streams.
 * Ed25519 cannot (it hashes the whole message twice, internally), so a list
 * signed by an Ed25519 CA is signed in one step, about 15 ms per 100,000
 * entries.
 */
export async function signInTurns(key: KeyObject, data: Uint8Array): Promise<Buffer> {
  if (key.asymmetricKeyType === "ed25519") return signOnce(null, data, key);
  const signer = createSign("sha256");
  for (let offset = 0; offset < data.length; offset += BYTES_PER_TURN) {
    if (offset > 0) await nextTurn();
    signer.update(data.subarray(offset, offset + BYTES_PER_TURN));
  }
  return signer.sign({ key, dsaEncoding: "der" });
}

/**
 * The PEM as the contents of a JSON string (its newlines escaped), made a
 * slice per turn: one JSON.stringify of a 5 MB list holds the loop ~65 ms.
 */
export async function jsonStringContents(pem: string): Promise<string> {
  const parts: string[] = [];
  for (let offset = 0; offset < pem.length; offset += BYTES_PER_TURN) {
    if (offset > 0) await nextTurn();
    parts.push(JSON.stringify(pem.slice(offset, offset + BYTES_PER_TURN)).slice(1, -1));
  }
  return parts.join("");
}

/** The CRLs of a concatenated PEM, each whole (found by their END lines: a regular expression over megabytes costs more). */
export function splitCrls(pem: string): string[] {
  const end = "-----END X509 CRL-----";
  const crls: string[] = [];
  for (let start = pem.indexOf("-----BEGIN X509 CRL-----"); start >= 0; ) {
    const stop = pem.indexOf(end, start);
    if (stop < 0) break;
    crls.push(pem.slice(start, stop + end.length) + "\n");
    start = pem.indexOf("-----BEGIN X509 CRL-----", stop);
  }
  return crls;
}
