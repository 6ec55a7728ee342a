import { invalid } from "../errors.js";
import { x509 } from "./x509.js";

/**
 * Checks a host's CSR and returns the public key to certify. The CSR proves
 * the host holds the key (its signature); it must be for an ECDSA P-256 or
 * Ed25519 key and ask for nothing: no extensions (so no extra names) and at
 * most a common name, which is ignored — the control plane alone decides what
 * the certificate names.
 */
export async function checkCsr(pem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    throw invalid("csr: not a PEM-encoded PKCS#10 certificate signing request");
  }
  const algorithm = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  const p256 = algorithm.name === "ECDSA" && algorithm.namedCurve === "P-256";
  if (!p256 && algorithm.name !== "Ed25519") {
    throw invalid(`csr: the key must be ECDSA P-256 or Ed25519 (got ${algorithm.name}${algorithm.namedCurve ? ` ${algorithm.namedCurve}` : ""})`);
  }
  if (csr.extensions.length > 0) {
    throw invalid("csr: must request no extensions (no subject alternative names); the control plane names the host itself");
  }
  const foreign = csr.subjectName.toJSON().flatMap((rdn) => Object.keys(rdn)).filter((type) => type !== "CN");
  if (foreign.length > 0) throw invalid(`csr: the subject may hold a common name only (got ${foreign.join(", ")})`);
  let signed = false;
  try {
    signed = await csr.verify();
  } catch {
    signed = false;
  }
  if (!signed) throw invalid("csr: its signature does not verify with its own key");
  return csr.publicKey;
}
