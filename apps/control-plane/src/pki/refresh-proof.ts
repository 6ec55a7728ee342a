import { createHash, createPublicKey } from "node:crypto";
import { compactVerify, errors as joseErrors } from "jose";

/** The JWS `typ` of a refresh proof, so no other signed object of the host's key can pass for one. */
export const REFRESH_PROOF_TYP = "muster-refresh-proof+jws";

/** base64url(SHA-256(refresh token)): what a proof signs, as DPoP's `ath` does for access tokens. */
export function refreshTokenThumbprint(refreshToken: string): string {
  return createHash("sha256").update(refreshToken).digest("base64url");
}

/**
 * Whether `proof` is a compact JWS over this refresh token's thumbprint, signed
 * by the key whose SPKI (base64) the token was bound to. No timestamp: the
 * refresh token works once, so a proof is good for one use too, and a host's
 * clock skew cannot break its refreshes.
 */
export async function verifyRefreshProof(proof: string, refreshToken: string, boundKeySpki: string): Promise<boolean> {
  const key = createPublicKey({ key: Buffer.from(boundKeySpki, "base64"), format: "der", type: "spki" });
  const algorithm = key.asymmetricKeyType === "ed25519" ? "EdDSA" : "ES256";
  try {
    const { payload, protectedHeader } = await compactVerify(proof, key, { algorithms: [algorithm] });
    if (protectedHeader.typ !== REFRESH_PROOF_TYP) return false;
    const claims = JSON.parse(new TextDecoder().decode(payload)) as { ath?: unknown };
    return claims.ath === refreshTokenThumbprint(refreshToken);
  } catch (error) {
    if (error instanceof joseErrors.JOSEError || error instanceof SyntaxError) return false;
    throw error;
  }
}
