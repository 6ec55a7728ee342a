import { Type } from "@sinclair/typebox";

/**
 * Resource IDs: a prefix naming the kind, then 128 random bits in lowercase
 * base32 (26 characters). Random IDs keep creation order private and make
 * collisions across a fleet of millions negligible.
 */
export const ID_PREFIX = {
  host: "host",
  user: "usr",
  team: "team",
  apiKey: "key",
  hostRegistrationToken: "htok",
  hostRefreshToken: "hrt",
  audit: "aud",
  command: "cmd",
  webhook: "whk",
  webhookDelivery: "whd",
  signingKey: "sk",
  certificateAuthority: "ca",
  /** Derived from the key-encryption key itself (a digest), so a sealed row names the key that opens it. */
  secretKey: "kek",
} as const;

export type IdKind = keyof typeof ID_PREFIX;

export const ID_BODY_LENGTH = 26;
const BODY = `[a-z2-7]{${ID_BODY_LENGTH}}`;

export function idPattern(kind: IdKind): string {
  return `^${ID_PREFIX[kind]}-${BODY}$`;
}

/** Any of our IDs, whatever its kind (for filters that take several kinds). */
export const ANY_ID_PATTERN = `^[a-z]{2,5}-${BODY}$`;

export function IdSchema(kind: IdKind) {
  return Type.String({
    pattern: idPattern(kind),
    description: `${ID_PREFIX[kind]}-… identifier`,
    examples: [`${ID_PREFIX[kind]}-${"a".repeat(ID_BODY_LENGTH)}`],
  });
}
