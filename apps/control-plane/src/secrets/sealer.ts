import { createCipheriv, createDecipheriv, createHash } from "node:crypto";
import { ID_BODY_LENGTH, ID_PREFIX } from "@muster/contract";
import { base32 } from "../lib/ids.js";
import type { RandomBytes } from "../lib/clock.js";

export const SECRET_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = "v1";

/** The key-encryption key is missing, wrong, or does not open what the database holds: the process must not start. */
export class SecretKeyError extends Error {}

/**
 * A key-encryption key as an operator gives it: 32 bytes in base64 (either
 * alphabet) or hex. Null when the text is not one.
 */
export function parseSecretKey(text: string): Buffer | null {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, "hex");
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) return null;
  const key = Buffer.from(trimmed, "base64");
  return key.length === SECRET_KEY_BYTES ? key : null;
}

/** A key-encryption key and its ID: a digest of the key, so every sealed row names the key that opens it without revealing it. */
export class SecretKey {
  readonly id: string;

  constructor(readonly key: Buffer) {
    const digest = createHash("sha256").update("muster key-encryption key id\0").update(key).digest();
    this.id = `${ID_PREFIX.secretKey}-${base32(digest).slice(0, ID_BODY_LENGTH)}`;
  }
}

export interface Sealed {
  kekId: string;
  sealed: string;
}

/** What each sealed value is bound to (the AES-GCM associated data), so a sealed value copied into another row does not open. */
export const sealedContext = {
  signingKey: (kid: string) => `signing_keys/${kid}`,
  certificateAuthority: (id: string) => `certificate_authority/${id}`,
  webhookSecret: (id: string) => `webhooks/${id}`,
};

/**
 * Seals and opens private key material with AES-256-GCM under the current
 * key-encryption key; opens what the previous one sealed too, during a KEK
 * rotation. The KEKs come from outside the database (environment, a file),
 * so the database, its WAL and its backups hold nothing that mints
 * credentials.
 */
export class Sealer {
  constructor(
    readonly current: SecretKey,
    readonly previous: SecretKey | null,
    private readonly random: RandomBytes,
  ) {}

  /** Whether a value sealed under `kekId` can be opened here. */
  opens(kekId: string): boolean {
    return kekId === this.current.id || kekId === this.previous?.id;
  }

  seal(plaintext: Buffer, context: string): Sealed {
    const nonce = this.random(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.current.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { kekId: this.current.id, sealed: `${FORMAT}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64url")}` };
  }

  /** Opens a sealed value; a refusal names the row and the key, never the material. */
  open(sealed: Sealed, context: string): Buffer {
    const key = sealed.kekId === this.current.id ? this.current : sealed.kekId === this.previous?.id ? this.previous : null;
    if (!key) throw unknownKey(sealed.kekId, context, this);
    const [format, encoded] = sealed.sealed.split(".");
    const bytes = Buffer.from(encoded ?? "", "base64url");
    if (format !== FORMAT || bytes.length < NONCE_BYTES + TAG_BYTES) {
      throw new SecretKeyError(`${context} is not sealed in a format this build reads; the database was written by another program`);
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key.key, bytes.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new SecretKeyError(
        `${context} does not open with the key-encryption key ${key.id} it names: it was altered, or sealed by another key of the same ID. Restore the database from a backup`,
      );
    }
  }
}

/** The refusal for a row sealed under a key this process was not given. */
export function unknownKey(kekId: string, what: string, sealer: Sealer): SecretKeyError {
  const given = [sealer.current.id, sealer.previous?.id].filter(Boolean).join(" and ");
  return new SecretKeyError(
    `the database's keys (${what}) are sealed under the key-encryption key ${kekId}, but this process was given ${given}. ` +
      "Start it with that key in MUSTER_SECRET_KEY (or MUSTER_SECRET_KEY_FILE; embedded: the data folder's secret.key from your backup). " +
      "To move to a new key, give the new one in MUSTER_SECRET_KEY and that one in MUSTER_SECRET_KEY_PREVIOUS",
  );
}
