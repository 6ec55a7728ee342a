import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters } from "jose";
import { webcrypto } from "node:crypto";
import type { SigningKeys } from "@muster/contract";
import { desc, gt, isNull, or } from "drizzle-orm";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { signingKeys, type SigningKeyRow } from "../db/schema/index.js";
import type { Clock, RandomBytes } from "../lib/clock.js";
import { unauthorized } from "../errors.js";
import { BoundedMap } from "../lib/bounded.js";
import { newId } from "../lib/ids.js";
import { sealedContext, SecretKeyError, type Sealer } from "../secrets/sealer.js";

/** The one algorithm accepted; never taken from the token. */
export const HOST_TOKEN_ALGORITHM = "HS256";

type CryptoKey = webcrypto.CryptoKey;

export interface HostClaims {
  hostId: string;
  family: string;
  expiresAt: Date;
}

interface LoadedKey {
  kid: string;
  key: CryptoKey;
  createdAt: Date;
  retiresAt: Date | null;
}

/** Verified tokens kept, so a host's beats verify its signature once per token rather than per request. */
const VERIFIED_CACHE_MAX = 100_000;
/** A token naming a key this process does not know makes it look in the database, at most this often. */
const UNKNOWN_KID_RELOAD_MS = 1_000;

const BAD_TOKEN = "host token is missing, malformed, expired or revoked; refresh it with POST /v1/hosts/auth/refresh";

/**
 * Signs and verifies host JWTs. The keys live in the database, sealed, so
 * every control plane shares them: the newest signs (its `kid` in each
 * token's header), earlier ones verify the tokens they signed until they
 * retire. Each is imported once as a CryptoKey (much cheaper per
 * verification than raw bytes). A rotation is announced to every process,
 * which reloads; a token naming a key not loaded yet (announced elsewhere a
 * moment ago) makes this process reload before it answers.
 */
export class HostTokens {
  private readonly verified = new BoundedMap<string, HostClaims>(VERIFIED_CACHE_MAX);
  private keys = new Map<string, LoadedKey>();
  private signer!: LoadedKey;
  private unknownKidReload: Promise<void> | null = null;
  private unknownKidReloadAt = 0;

  private constructor(
    private readonly db: Db,
    private readonly sealer: Sealer,
    private readonly clock: Clock,
    private readonly random: RandomBytes,
    private readonly config: Pick<Config, "jwtIssuer" | "jwtAudience" | "hostTokenTtlS" | "clockLeewayS">,
  ) {}

  static async load(db: Db, sealer: Sealer, clock: Clock, random: RandomBytes, config: Config): Promise<HostTokens> {
    const tokens = new HostTokens(db, sealer, clock, random, config);
    await tokens.reload();
    return tokens;
  }

  /** Reads the keys that still verify from the database; the newest that has not begun to retire signs. */
  async reload(): Promise<void> {
    const now = this.clock.now();
    const rows = await this.db
      .select()
      .from(signingKeys)
      .where(or(isNull(signingKeys.retiresAt), gt(signingKeys.retiresAt, now)))
      .orderBy(desc(signingKeys.createdAt));
    const signer = rows.find((row) => row.retiresAt === null);
    if (!signer) throw new Error("no host-token signing key in the database (the start-up creates one)");
    const keys = new Map<string, LoadedKey>();
    for (const row of rows) keys.set(row.kid, this.keys.get(row.kid) ?? (await this.importKey(row)));
    for (const row of rows) keys.get(row.kid)!.retiresAt = row.retiresAt;
    this.keys = keys;
    this.signer = keys.get(signer.kid)!;
  }

  /** The key that signs now and the earlier ones that still verify, as this process has them loaded. */
  list(): SigningKeys {
    const view = (key: LoadedKey) => ({ kid: key.kid, created_at: key.createdAt.toISOString(), retires_at: key.retiresAt?.toISOString() ?? null });
    return {
      current: view(this.signer),
      retiring: [...this.keys.values()].filter((key) => key !== this.signer).map(view),
    };
  }

  /** When the key that signs now was made (automatic rotation ages it). */
  get currentCreatedAt(): Date {
    return this.signer.createdAt;
  }

  async sign(hostId: string, family: string): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const exp = now + this.config.hostTokenTtlS;
    const signer = this.signer;
    const token = await new SignJWT({ typ: "host", host_id: hostId, fam: family })
      .setProtectedHeader({ alg: HOST_TOKEN_ALGORITHM, kid: signer.kid, typ: "JWT" })
      .setSubject(hostId)
      .setIssuer(this.config.jwtIssuer)
      .setAudience(this.config.jwtAudience)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(newId(this.random, "host").slice(5))
      .sign(signer.key);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /**
   * Checks signature and claims. A token that passed is remembered until its
   * `exp`: a signature cannot stop being valid (its key retires only after
   * the tokens it signed have expired), and revocation is decided by the
   * credential family on every request, not here.
   */
  async verify(token: string): Promise<HostClaims> {
    const known = this.verifiedBefore(token);
    if (known) return known;
    const claims = await this.verifySignature(token);
    this.verified.set(token, claims);
    return claims;
  }

  /** The claims of a token that passed before and has not expired (leeway included); undefined when it must be verified. */
  verifiedBefore(token: string): HostClaims | undefined {
    const known = this.verified.get(token);
    if (known && known.expiresAt.getTime() + this.config.clockLeewayS * 1000 > this.clock.now().getTime()) return known;
    if (known) this.verified.delete(token);
    return undefined;
  }

  private async verifySignature(token: string): Promise<HostClaims> {
    try {
      const { payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.keyFor(header), {
        algorithms: [HOST_TOKEN_ALGORITHM],
        issuer: this.config.jwtIssuer,
        audience: this.config.jwtAudience,
        requiredClaims: ["sub", "exp", "iat", "jti"],
        currentDate: this.clock.now(),
        clockTolerance: this.config.clockLeewayS,
      });
      if (payload.typ !== "host" || payload.host_id !== payload.sub || typeof payload.fam !== "string") {
        throw unauthorized(BAD_TOKEN);
      }
      return { hostId: payload.sub!, family: payload.fam, expiresAt: new Date(payload.exp! * 1000) };
    } catch (error) {
      if (error instanceof joseErrors.JOSEError || error instanceof TypeError) throw unauthorized(BAD_TOKEN);
      throw error;
    }
  }

  private async keyFor(header: JWTHeaderParameters): Promise<CryptoKey> {
    const kid = typeof header.kid === "string" ? header.kid : null;
    if (kid === null) throw new joseErrors.JWKSNoMatchingKey();
    if (!this.keys.has(kid)) await this.reloadForUnknownKid();
    const key = this.keys.get(kid);
    if (!key || (key.retiresAt !== null && key.retiresAt <= this.clock.now())) throw new joseErrors.JWKSNoMatchingKey();
    return key.key;
  }

  /** One reload at a time, and at most one a second: made-up `kid`s cost the database next to nothing. */
  private reloadForUnknownKid(): Promise<void> {
    if (this.unknownKidReload) return this.unknownKidReload;
    const now = this.clock.now().getTime();
    if (now - this.unknownKidReloadAt < UNKNOWN_KID_RELOAD_MS) return Promise.resolve();
    this.unknownKidReloadAt = now;
    this.unknownKidReload = this.reload().finally(() => (this.unknownKidReload = null));
    return this.unknownKidReload;
  }

  private async importKey(row: SigningKeyRow): Promise<LoadedKey> {
    if (row.sealedSecret === null || row.kekId === null) {
      throw new SecretKeyError(`the signing key ${row.kid} is not sealed; a start of this build seals it (restart one control plane)`);
    }
    const secret = this.sealer.open({ kekId: row.kekId, sealed: row.sealedSecret }, sealedContext.signingKey(row.kid));
    const key = await webcrypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    return { kid: row.kid, key, createdAt: row.createdAt, retiresAt: row.retiresAt };
  }
}
