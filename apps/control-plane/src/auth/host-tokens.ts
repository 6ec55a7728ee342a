import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters } from "jose";
import { webcrypto } from "node:crypto";
import { asc } from "drizzle-orm";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import { signingKeys } from "../db/schema/index.js";
import type { Clock, RandomBytes } from "../lib/clock.js";
import { unauthorized } from "../errors.js";
import { BoundedMap } from "../lib/bounded.js";
import { newId } from "../lib/ids.js";

/** The one algorithm accepted; never taken from the token. */
const ALGORITHM = "HS256";
const FIRST_KID = "k1";

type CryptoKey = webcrypto.CryptoKey;

export interface HostClaims {
  hostId: string;
  family: string;
  expiresAt: Date;
}

/** Verified tokens kept, so a host's beats verify its signature once per token rather than per request. */
const VERIFIED_CACHE_MAX = 100_000;

const BAD_TOKEN = "host token is missing, malformed, expired or revoked; refresh it with POST /v1/hosts/auth/refresh";

/**
 * Signs and verifies host JWTs. Keys live in the database so every control
 * plane shares them; each is imported once as a CryptoKey (much cheaper per
 * verification than raw bytes).
 */
export class HostTokens {
  private readonly verified = new BoundedMap<string, HostClaims>(VERIFIED_CACHE_MAX);

  private constructor(
    private readonly keys: Map<string, CryptoKey>,
    private readonly currentKid: string,
    private readonly clock: Clock,
    private readonly random: RandomBytes,
    private readonly config: Pick<Config, "jwtIssuer" | "jwtAudience" | "hostTokenTtlS" | "clockLeewayS">,
  ) {}

  /** Loads the signing keys, creating the first on an empty database (every process agrees on it). */
  static async load(db: Db, clock: Clock, random: RandomBytes, config: Config): Promise<HostTokens> {
    await db
      .insert(signingKeys)
      .values({ kid: FIRST_KID, algorithm: ALGORITHM, secret: random(32).toString("base64url"), createdAt: clock.now() })
      .onConflictDoNothing();
    const rows = await db.select().from(signingKeys).orderBy(asc(signingKeys.createdAt));
    const keys = new Map<string, CryptoKey>();
    for (const row of rows) {
      keys.set(row.kid, await importHmacKey(Buffer.from(row.secret, "base64url")));
    }
    return new HostTokens(keys, rows[rows.length - 1]!.kid, clock, random, config);
  }

  async sign(hostId: string, family: string): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const exp = now + this.config.hostTokenTtlS;
    const token = await new SignJWT({ typ: "host", host_id: hostId, fam: family })
      .setProtectedHeader({ alg: ALGORITHM, kid: this.currentKid, typ: "JWT" })
      .setSubject(hostId)
      .setIssuer(this.config.jwtIssuer)
      .setAudience(this.config.jwtAudience)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(newId(this.random, "host").slice(5))
      .sign(this.keys.get(this.currentKid)!);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /**
   * Checks signature and claims. A token that passed is remembered until its
   * `exp`: a signature cannot stop being valid, and revocation is decided by the
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
        algorithms: [ALGORITHM],
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

  private keyFor(header: JWTHeaderParameters): CryptoKey {
    const key = header.kid === undefined ? undefined : this.keys.get(header.kid);
    if (!key) throw new joseErrors.JWKSNoMatchingKey();
    return key;
  }
}

function importHmacKey(secret: Buffer): Promise<CryptoKey> {
  return webcrypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}
