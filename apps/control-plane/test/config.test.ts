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

describe("rate limit configuration", () => {
  it("defaults to a generous per-address and a tight per-token limit, trusting no proxy", () => {
    expect(loadConfig({})).toMatchObject({ rateLimitPerAddress: 600, rateLimitPerToken: 10, trustedProxies: [] });
  });

  it("reads the limits (0 turns one off) and the trusted proxies", () => {
    const config = loadConfig({ MUSTER_RATE_LIMIT_PER_ADDRESS: "0", MUSTER_RATE_LIMIT_PER_TOKEN: "3", MUSTER_TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.7,::1" });
    expect(config).toMatchObject({ rateLimitPerAddress: 0, rateLimitPerToken: 3, trustedProxies: ["10.0.0.0/8", "192.168.1.7", "::1"] });
  });

  it("names each bad setting", () => {
    const attempt = () => loadConfig({ MUSTER_RATE_LIMIT_PER_TOKEN: "-1", MUSTER_TRUSTED_PROXIES: "10.0.0.0/33,proxy.local" });
    expect(attempt).toThrow(/MUSTER_RATE_LIMIT_PER_TOKEN must be a whole number/);
    expect(attempt).toThrow(/MUSTER_TRUSTED_PROXIES must list IP addresses or CIDRs.*"10.0.0.0\/33"/);
    expect(attempt).toThrow(/"proxy.local"/);
  });
});

describe("clock leeway configuration", () => {
  it("defaults to 30 s and reads MUSTER_CLOCK_LEEWAY_S", () => {
    expect(loadConfig({}).clockLeewayS).toBe(30);
    expect(loadConfig({ MUSTER_CLOCK_LEEWAY_S: "0" }).clockLeewayS).toBe(0);
  });

  it("refuses a leeway over 300 s, or over half the host-token lifetime", () => {
    expect(() => loadConfig({ MUSTER_CLOCK_LEEWAY_S: "301" })).toThrow(/MUSTER_CLOCK_LEEWAY_S must be a whole number from 0 to 300/);
    expect(() => loadConfig({ MUSTER_CLOCK_LEEWAY_S: "31", MUSTER_HOST_TOKEN_TTL_S: "60" })).toThrow(/MUSTER_CLOCK_LEEWAY_S \(31\) must be at most half/);
    expect(loadConfig({ MUSTER_HOST_TOKEN_TTL_S: "60" }).clockLeewayS).toBe(30);
  });
});

describe("key-encryption key configuration", () => {
  const key = Buffer.alloc(32, 9);

  it("takes 32 bytes in base64 (either alphabet) or hex, a file instead, the previous key, and the rotation period", () => {
    for (const text of [key.toString("base64"), key.toString("base64url"), key.toString("hex")]) {
      expect(loadConfig({ MUSTER_SECRET_KEY: text }).secretKey).toBe(text);
    }
    expect(
      loadConfig({ DATABASE_URL: "postgres://db/muster", MUSTER_SECRET_KEY_FILE: "/run/secrets/kek", MUSTER_SECRET_KEY_PREVIOUS: Buffer.alloc(32, 1).toString("hex"), MUSTER_SIGNING_KEY_ROTATE_DAYS: "30" }),
    ).toMatchObject({ secretKeyFile: "/run/secrets/kek", signingKeyRotateDays: 30 });
    expect(loadConfig({}).signingKeyRotateDays).toBeNull();
  });

  it("requires one with DATABASE_URL and says how to make one", () => {
    expect(() => loadConfig({ DATABASE_URL: "postgres://db/muster" })).toThrow(/MUSTER_SECRET_KEY \(or MUSTER_SECRET_KEY_FILE\) is required with DATABASE_URL.*openssl rand -base64 32/);
  });

  it("names each mistake without repeating the value given", () => {
    const short = key.subarray(0, 16).toString("base64");
    const attempt = () =>
      loadConfig({ MUSTER_SECRET_KEY: short, MUSTER_SECRET_KEY_FILE: "/k", MUSTER_SECRET_KEY_PREVIOUS: "not-a-key", MUSTER_SIGNING_KEY_ROTATE_DAYS: "0" });
    expect(attempt).toThrow(/MUSTER_SECRET_KEY and MUSTER_SECRET_KEY_FILE are two ways to give one key/);
    expect(attempt).toThrow(/MUSTER_SECRET_KEY must be 32 random bytes in base64 or hex/);
    expect(attempt).toThrow(/MUSTER_SECRET_KEY_PREVIOUS must be 32 random bytes/);
    expect(attempt).toThrow(/MUSTER_SIGNING_KEY_ROTATE_DAYS must be a whole number from 1 to 3650/);
    expect(attempt).not.toThrow(new RegExp(short.replace(/[+/=]/g, "\\$&")));
    expect(() => loadConfig({ MUSTER_SECRET_KEY: key.toString("hex"), MUSTER_SECRET_KEY_PREVIOUS: key.toString("base64") })).toThrow(
      /MUSTER_SECRET_KEY_PREVIOUS is the same key as MUSTER_SECRET_KEY/,
    );
  });
});

describe("KV store configuration", () => {
  it("reads a Redis Cluster's nodes from REDIS_CLUSTER_NODES, comma-separated", () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: "redis://10.0.0.1:7000, rediss://user:secret@10.0.0.2:7000" });
    expect(config).toMatchObject({ redisUrl: null, redisClusterNodes: ["redis://10.0.0.1:7000", "rediss://user:secret@10.0.0.2:7000"] });
    expect(loadConfig({}).redisClusterNodes).toBeNull();
  });

  it("takes one Redis or a cluster, not both", () => {
    expect(() => loadConfig({ REDIS_URL: "redis://10.0.0.1:6379", REDIS_CLUSTER_NODES: "redis://10.0.0.1:7000" })).toThrow(
      /REDIS_URL and REDIS_CLUSTER_NODES exclude each other/,
    );
  });

  it("names a cluster node that is not a Redis URL", () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: "redis://10.0.0.1:7000,10.0.0.2:7000" })).toThrow(
      /REDIS_CLUSTER_NODES must start with redis: or rediss:/,
    );
  });

  it("refuses a key prefix with braces on a cluster, where they would put every key in one hash slot", () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: "redis://10.0.0.1:7000", MUSTER_KV_PREFIX: "muster{a}:" })).toThrow(
      /MUSTER_KV_PREFIX must not contain \{ or \}/,
    );
    expect(loadConfig({ REDIS_URL: "redis://10.0.0.1:6379", MUSTER_KV_PREFIX: "muster{a}:" }).kvPrefix).toBe("muster{a}:");
  });
});
