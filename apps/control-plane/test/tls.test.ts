import { execSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedCertificate } from "@muster/testkit";
import { loadConfig } from "../src/config.js";
import { certificatePin, loadServerTls } from "../src/tls.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";

/** The control plane's certificate pin: computed like openssl does, handed to agents at register and refresh. */
const tls = selfSignedCertificate();

describe("the certificate pin", () => {
  it("is the SHA-256 of the certificate's public key, as openssl computes it", () => {
    const openssl = execSync(
      `openssl x509 -in ${tls.certFile} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
    )
      .toString()
      .trim();
    expect(certificatePin(new X509Certificate(tls.cert))).toBe(`sha256/${openssl}`);
    expect(loadServerTls({ tlsCertFile: tls.certFile, tlsKeyFile: tls.keyFile })?.pin).toBe(`sha256/${openssl}`);
    expect(loadServerTls({ tlsCertFile: null, tlsKeyFile: null })).toBeNull();
  });

  it("needs both TLS files or neither", () => {
    expect(() => loadConfig({ MUSTER_TLS_CERT_FILE: tls.certFile })).toThrow(/MUSTER_TLS_CERT_FILE and MUSTER_TLS_KEY_FILE go together/);
    expect(loadConfig({ MUSTER_TLS_CERT_FILE: tls.certFile, MUSTER_TLS_KEY_FILE: tls.keyFile })).toMatchObject({ tlsCertFile: tls.certFile });
  });
});

describe("registration and refresh", () => {
  let pinned: TestApp;
  let plain: TestApp;
  const pin = certificatePin(new X509Certificate(tls.cert));
  beforeAll(async () => {
    pinned = await startTestApp({ config: { serverCertificatePin: pin } });
    plain = await startTestApp({ stores: pinned.stores });
  });
  afterAll(async () => {
    await plain?.close();
    await pinned?.close();
  });

  it("hand out the pin when the control plane serves TLS itself, and nothing when it does not", async () => {
    const creds = await new Factories(pinned).enrolledHost();
    expect(creds.server_certificate_pin).toBe(pin);
    const refreshed = await pinned.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
    expect(refreshed.body.server_certificate_pin).toBe(pin);

    const { registration_token } = await new Factories(pinned).regularHost();
    const viaPlain = await plain.http.post("/v1/hosts/register", {
      body: { token: registration_token, address: "10.0.0.1:1", arch: "x86_64", cpu_cores: 1, memory_mb: 1, disk_gb: 1 },
    });
    expect(viaPlain.status).toBe(201);
    expect(viaPlain.body).not.toHaveProperty("server_certificate_pin");
  });
});
