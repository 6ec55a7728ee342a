import { Type, type Static } from "@sinclair/typebox";
import { Timestamp } from "./common.js";

/** A PEM-encoded X.509 object (certificate, CSR or CRL). */
export const Pem = (label: string, maxLength: number, options: { description?: string } = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: `^-----BEGIN ${label}-----`, description: options.description ?? `PEM (${label})` });

export const CertificateAuthorityInfo = Type.Object(
  {
    certificate: Pem("CERTIFICATE", 16_384),
    fingerprint_sha256: Type.String({ pattern: "^[0-9a-f]{64}$", description: "SHA-256 of the certificate's DER, hex" }),
    expires_at: Timestamp,
  },
  { $id: "CertificateAuthority" },
);
export type CertificateAuthorityInfo = Static<typeof CertificateAuthorityInfo>;
