import "reflect-metadata";
import { createPublicKey, verify, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import { newHostKey, refreshProof } from "../src/agent/host-key.js";

x509.cryptoProvider.set(webcrypto as never);

/**
 * The agent encodes its CSR itself (no X.509 library in the agent): the
 * library the control plane parses CSRs with must read it as the request the
 * control plane accepts, and the refresh proof must verify as ES256.
 */
describe("the host key and its CSR", () => {
  it("is a PKCS#10 request for the P-256 public key of the private key, naming nothing, signed by that key", async () => {
    const { privateKeyPem, csrPem } = await newHostKey();
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(csr.publicKey.algorithm).toMatchObject({ name: "ECDSA", namedCurve: "P-256" });
    expect(csr.subject).toBe("");
    expect(csr.extensions).toHaveLength(0);
    expect(csr.attributes).toHaveLength(0);
    expect(csr.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
    expect(await csr.verify()).toBe(true);
    const ofPrivateKey = createPublicKey(privateKeyPem).export({ type: "spki", format: "der" });
    expect(Buffer.from(csr.publicKey.rawData).equals(ofPrivateKey)).toBe(true);
  });

  it("makes a new key every time", async () => {
    const [a, b] = await Promise.all([newHostKey(), newHostKey()]);
    expect(a.privateKeyPem).not.toBe(b.privateKeyPem);
    expect(a.csrPem).not.toBe(b.csrPem);
  });

  it("proves possession with a compact ES256 JWS over the refresh token's SHA-256", async () => {
    const { privateKeyPem } = await newHostKey();
    const proof = await refreshProof(privateKeyPem, "mrt_example");
    const [header, payload, signature] = proof.split(".");
    expect(JSON.parse(Buffer.from(header!, "base64url").toString())).toEqual({ alg: "ES256", typ: "muster-refresh-proof+jws" });
    expect(JSON.parse(Buffer.from(payload!, "base64url").toString())).toEqual({
      ath: Buffer.from(await webcrypto.subtle.digest("SHA-256", Buffer.from("mrt_example"))).toString("base64url"),
    });
    const raw = Buffer.from(signature!, "base64url");
    expect(raw).toHaveLength(64);
    const key = { key: createPublicKey(privateKeyPem), dsaEncoding: "ieee-p1363" as const };
    expect(verify("sha256", Buffer.from(`${header}.${payload}`), key, raw)).toBe(true);
  });
});
