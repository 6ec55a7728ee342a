import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddressPolicy, AddressRefused } from "../src/net/address-policy.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { REFUSED_ADDRESSES } from "./support/inputs.js";

/**
 * The address a host reports may not point the control plane at itself, a
 * link's neighbours, the cloud's metadata service or a whole segment: refused
 * at registration (400 naming the range and the setting), and again after DNS
 * at connect time (probe.test.ts).
 */
let t: TestApp;
let f: Factories;

beforeAll(async () => {
  // The default policy, not the tests' usual allowance of loopback.
  t = await startTestApp({ config: { probeAllowCidrs: [] } });
  f = new Factories(t);
});
afterAll(() => t.close());

const register = (token: string, address: string) => t.http.post("/v1/hosts/register", { body: { token, ...machineSpecs, address } });

describe("registration", () => {
  it("refuses every refused form with 400 naming the range and the setting, and leaves the token usable", async () => {
    const { registration_token } = await f.regularHost();
    for (const [address, range] of REFUSED_ADDRESSES) {
      const res = await register(registration_token, address);
      expect(res.status, address).toBe(400);
      expect(res.body.error.code, address).toBe("invalid_request");
      expect(res.body.error.message, address).toContain("body field 'address'");
      if (range) expect(res.body.error.message, address).toContain(`is in ${range}`);
      if (range) expect(res.body.error.message, address).toContain(`set MUSTER_PROBE_ALLOW_CIDRS=${range}`);
    }
    expect((await register(registration_token, "10.0.0.8:7070")).status).toBe(201);
  });

  it("tells a newcomer trying an agent on one machine exactly what to set", async () => {
    const { registration_token } = await f.regularHost();
    const res = await register(registration_token, "127.0.0.1:7070");
    expect(res.body.error.message).toBe(
      "body field 'address': 127.0.0.1 is in 127.0.0.0/8 (loopback), which the control plane does not connect to; to allow it (an agent on this machine, a test setup), set MUSTER_PROBE_ALLOW_CIDRS=127.0.0.0/8",
    );
  });

  it("keeps the private ranges datacenter hosts live in, public addresses and DNS names", async () => {
    for (const address of ["10.1.2.3:7070", "172.16.0.9:443", "192.168.1.20:8443", "[fd00::5]:7070", "203.0.113.7:7070", "worker-3.dc1.example.net:7070", "[2001:db8::1]:1"]) {
      const { registration_token } = await f.regularHost();
      expect((await register(registration_token, address)).status, address).toBe(201);
    }
  });

  it("allows what MUSTER_PROBE_ALLOW_CIDRS allows, refuses what MUSTER_PROBE_DENY_CIDRS adds", async () => {
    const allowing = await startTestApp({ stores: t.stores, config: { probeAllowCidrs: ["127.0.0.0/8"], probeDenyCidrs: ["10.9.0.0/16"] } });
    try {
      const { registration_token } = await f.regularHost();
      const denied = await allowing.http.post("/v1/hosts/register", { body: { token: registration_token, ...machineSpecs, address: "10.9.4.4:7070" } });
      expect(denied.status).toBe(400);
      expect(denied.body.error.message).toBe("body field 'address': 10.9.4.4 is in 10.9.0.0/16, which MUSTER_PROBE_DENY_CIDRS refuses");
      const loopback = await allowing.http.post("/v1/hosts/register", { body: { token: registration_token, ...machineSpecs, address: "127.0.0.1:7070" } });
      expect(loopback.status).toBe(201);
    } finally {
      await allowing.close();
    }
  });
});

describe("the policy", () => {
  const check = (policy: AddressPolicy, address: string) => {
    try {
      policy.checkAddress(address);
      return "allowed";
    } catch (error) {
      if (error instanceof AddressRefused) return error.message;
      throw error;
    }
  };

  it("lets the most specific range decide: a deny inside an allow refuses, an allow inside a deny lets in", () => {
    const policy = new AddressPolicy({ allow: ["10.0.0.0/8", "169.254.10.0/24"], deny: ["10.5.0.0/16"] });
    expect(check(policy, "10.1.1.1:1")).toBe("allowed");
    expect(check(policy, "10.5.1.1:1")).toMatch(/is in 10\.5\.0\.0\/16, which MUSTER_PROBE_DENY_CIDRS refuses/);
    expect(check(policy, "169.254.10.3:1")).toBe("allowed");
    expect(check(policy, "169.254.169.254:80")).toMatch(/is in 169\.254\.0\.0\/16 \(link-local/);
  });

  it("reads IPv4-mapped IPv6 ranges in the settings as the IPv4 range they hold", () => {
    const policy = new AddressPolicy({ allow: ["::ffff:127.0.0.0/104"] });
    expect(check(policy, "127.0.0.1:1")).toBe("allowed");
    expect(check(policy, "[::ffff:127.0.0.1]:1")).toBe("allowed");
  });

  it("checks every address a name resolves to and hands back the one to connect to", async () => {
    const answers: Record<string, string[]> = {
      "good.test": ["10.0.0.5", "10.0.0.6"],
      "metadata.test": ["169.254.169.254"],
      "mixed.test": ["10.0.0.5", "127.0.0.1"],
      "mapped.test": ["::ffff:169.254.169.254"],
      "nowhere.test": [],
    };
    let lookups = 0;
    const policy = new AddressPolicy({}, async (host) => (lookups++, (answers[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))));
    expect(await policy.resolve({ host: "good.test", port: 7070 })).toEqual({ ip: "10.0.0.5", family: 4, port: 7070 });
    await expect(policy.resolve({ host: "metadata.test", port: 80 })).rejects.toThrow(/metadata\.test \(169\.254\.169\.254\) is in 169\.254\.0\.0\/16/);
    await expect(policy.resolve({ host: "mixed.test", port: 80 })).rejects.toThrow(/mixed\.test \(127\.0\.0\.1\) is in 127\.0\.0\.0\/8/);
    await expect(policy.resolve({ host: "mapped.test", port: 80 })).rejects.toBeInstanceOf(AddressRefused);
    await expect(policy.resolve({ host: "nowhere.test", port: 80 })).rejects.toMatchObject({ code: "ENOTFOUND" });
    // A literal is never looked up.
    expect(await policy.resolve({ host: "10.2.3.4", port: 1 })).toEqual({ ip: "10.2.3.4", family: 4, port: 1 });
    expect(lookups).toBe(5);
  });
});
