import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";

describe("host identity configuration", () => {
  it("reads the CA files and the certificate lifetime", () => {
    const config = loadConfig({ MUSTER_CA_CERT_FILE: "/etc/muster/ca.pem", MUSTER_CA_KEY_FILE: "/etc/muster/ca.key", MUSTER_HOST_CERT_TTL_S: "7200" });
    expect(config).toMatchObject({ caCertFile: "/etc/muster/ca.pem", caKeyFile: "/etc/muster/ca.key", hostCertTtlS: 7200 });
  });

  it("wants both CA files or neither", () => {
    expect(() => loadConfig({ MUSTER_CA_CERT_FILE: "/etc/muster/ca.pem" })).toThrow(/MUSTER_CA_CERT_FILE and MUSTER_CA_KEY_FILE go together/);
  });

  it("refuses certificates that would expire before agents renew them", () => {
    expect(() => loadConfig({ MUSTER_HOST_TOKEN_TTL_S: "3600", MUSTER_HOST_CERT_TTL_S: "3600" })).toThrow(/MUSTER_HOST_CERT_TTL_S must be longer/);
  });
});
