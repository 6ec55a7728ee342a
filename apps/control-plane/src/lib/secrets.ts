import { createHash, timingSafeEqual } from "node:crypto";
import type { RandomBytes } from "./clock.js";

/**
 * Secrets are ≥ 256 random bits, so a plain SHA-256 stored in a unique column is
 * enough (no slow hash needed); lookups go by hash and the final comparison is
 * constant-time.
 */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

export const API_KEY_PREFIX = "msk_";
export const REFRESH_TOKEN_PREFIX = "mrt_";

/** Operator API key: recognisable prefix + 256 bits. */
export function newApiKey(random: RandomBytes): string {
  return API_KEY_PREFIX + random(32).toString("base64url");
}

/** The short, non-secret beginning of a key shown in listings. */
export function keyStart(key: string): string {
  return key.slice(0, API_KEY_PREFIX.length + 6);
}

/** Registration token: 32 random bytes as 64 hex characters (SPEC §5). */
export function newRegistrationToken(random: RandomBytes): string {
  return random(32).toString("hex");
}

export function newRefreshToken(random: RandomBytes): string {
  return REFRESH_TOKEN_PREFIX + random(32).toString("base64url");
}

export function newFamily(random: RandomBytes): string {
  return random(16).toString("base64url");
}
