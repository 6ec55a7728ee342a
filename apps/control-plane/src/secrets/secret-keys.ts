import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { isNotNull } from "drizzle-orm";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Database, Db } from "../db/client.js";
import { certificateAuthority, signingKeys } from "../db/schema/index.js";
import type { RandomBytes } from "../lib/clock.js";
import { parseSecretKey, Sealer, SECRET_KEY_BYTES, SecretKey, SecretKeyError } from "./sealer.js";

/** The embedded mode's generated key-encryption key: in the data folder, beside PGlite's folder and not in it. */
export const SECRET_KEY_FILE = "secret.key";

interface LoadDeps {
  random: RandomBytes;
  logger: Logger;
}

/**
 * The key-encryption keys of this start: MUSTER_SECRET_KEY or the file
 * MUSTER_SECRET_KEY_FILE names, else (embedded mode) the data folder's
 * `secret.key`, made on the first start; and MUSTER_SECRET_KEY_PREVIOUS
 * during a KEK rotation. A missing key is never replaced by a new one while
 * the database holds keys sealed under it.
 */
export async function loadSealer(config: Config, database: Database, deps: LoadDeps): Promise<Sealer> {
  const previousKey = config.secretKeyPrevious === null ? null : parseSecretKey(config.secretKeyPrevious);
  const previous = previousKey === null ? null : new SecretKey(previousKey);
  const current = await currentKey(config, database, previous, deps);
  if (previous?.id === current.id) {
    throw new SecretKeyError("MUSTER_SECRET_KEY_PREVIOUS is the key in use: give the new key as the current one and the old one as the previous one");
  }
  return new Sealer(current, previous, deps.random);
}

async function currentKey(config: Config, database: Database, previous: SecretKey | null, deps: LoadDeps): Promise<SecretKey> {
  const given = config.secretKey === null ? null : parseSecretKey(config.secretKey);
  if (given) return new SecretKey(given);
  if (config.secretKeyFile !== null) return readKeyFile(config.secretKeyFile, "MUSTER_SECRET_KEY_FILE", deps.logger);
  if (database.dataDir === null) {
    throw new SecretKeyError(
      "MUSTER_SECRET_KEY (or MUSTER_SECRET_KEY_FILE) is required with PostgreSQL: the key-encryption key that seals the CA's and the host-token signing keys; make one with `openssl rand -base64 32`",
    );
  }
  const path = join(database.dataDir, SECRET_KEY_FILE);
  if (existsSync(path)) return readKeyFile(path, "the embedded key-encryption key", deps.logger);
  const sealedUnder = (await sealedKekIds(database.db)).filter((id) => id !== previous?.id);
  if (sealedUnder.length > 0) {
    throw new SecretKeyError(
      `the database in ${database.dataDir} holds keys sealed under the key-encryption key ${sealedUnder.join(", ")}, but ${path} is missing: ` +
        "restore it from the backup you keep apart from the data folder, or give that key in MUSTER_SECRET_KEY",
    );
  }
  const key = deps.random(SECRET_KEY_BYTES);
  writePrivateFile(path, `${key.toString("base64")}\n`);
  deps.logger.warn(
    { path },
    "made the key-encryption key that seals the CA's and the host-token signing keys; back it up apart from the data folder: without it they cannot be opened",
  );
  return new SecretKey(key);
}

function readKeyFile(path: string, what: string, logger: Logger): SecretKey {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new SecretKeyError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
  const key = parseSecretKey(text);
  if (!key) throw new SecretKeyError(`${what} ${path} must hold 32 random bytes in base64 or hex (make one with \`openssl rand -base64 32\`)`);
  if ((statSync(path).mode & 0o077) !== 0) {
    logger.warn({ path }, `${what} can be read by other users of this machine; make it owner-only (chmod 600)`);
  }
  return new SecretKey(key);
}

/** Written whole and flushed before anything is sealed under it: a key lost to a power cut would lock the database for good. */
function writePrivateFile(path: string, text: string): void {
  const fd = openSync(path, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const folder = openSync(dirname(path), "r");
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}

/** The key-encryption keys that sealed what the database holds. */
export async function sealedKekIds(db: Db): Promise<string[]> {
  const [keys, cas] = await Promise.all([
    db.selectDistinct({ kekId: signingKeys.kekId }).from(signingKeys).where(isNotNull(signingKeys.kekId)),
    db.selectDistinct({ kekId: certificateAuthority.kekId }).from(certificateAuthority).where(isNotNull(certificateAuthority.kekId)),
  ]);
  return [...new Set([...keys, ...cas].map((row) => row.kekId!))];
}
