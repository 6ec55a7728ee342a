import { ID_BODY_LENGTH, ID_PREFIX, type IdKind } from "@muster/contract";
import type { RandomBytes } from "./clock.js";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Lowercase RFC 4648 base32 without padding. */
export function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export function newId(random: RandomBytes, kind: IdKind): string {
  return `${ID_PREFIX[kind]}-${base32(random(16)).slice(0, ID_BODY_LENGTH)}`;
}
