import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../src/kv/kv.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { listen } from "./support/channel.js";
import { FakeClock } from "./support/clock.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { createTestStores, type TestStores } from "./support/stores.js";

// The fake clock starts on a minute boundary, where a rate-limit window begins.
const WINDOW_MS = 60_000;

describe("per-token limit", () => {
  let t: TestApp;
  const clock = new FakeClock();
  beforeAll(async () => {
    t = await startTestApp({ clock, config: { rateLimitPerToken: 3 } });
  });
  afterAll(() => t.close());

  it.each([
    ["registration", "/v1/hosts/register", { token: "a".repeat(64), ...machineSpecs }],
    ["refresh", "/v1/hosts/auth/refresh", { refresh_token: "mrt_not-a-live-token" }],
  ])("refuses the %s past the limit with 429 and Retry-After until the window ends, then lets it through again", async (_, path, body) => {
    for (let i = 0; i < 3; i++) expect((await t.http.post(path, { body })).status).toBe(401);
    clock.advance(20_000);
    const limited = await t.http.post(path, { body });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("40");
    expect(limited.body.error).toMatchObject({ code: "rate_limited", message: expect.stringMatching(/with this token \(at most 3 a minute\); retry in 40 s/) });

    clock.advance(40_000);
    expect((await t.http.post(path, { body })).status).toBe(401);
  });
});

describe("per-address limit, shared by two control planes on one KV store", () => {
  const clock = new FakeClock();
  const config = { rateLimitPerAddress: 4 };
  let a: TestApp;
  let b: TestApp;
  let urls: string[];
  let closeServers: () => Promise<void>;

  beforeAll(async () => {
    a = await startTestApp({ clock, config });
    b = await startTestApp({ clock, config, stores: a.stores });
    const served = await Promise.all([listen(a), listen(b)]);
    urls = served.map((s) => s.baseUrl);
    closeServers = async () => void (await Promise.all(served.map((s) => s.close())));
  });
  afterAll(async () => {
    await closeServers();
    await b.close();
    await a.close();
  });

  const register = async (url: string, token: string) => {
    const res = await fetch(`${url}/v1/hosts/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, ...machineSpecs }),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error: { message: string } } };
  };

  it("counts requests to either plane together, refuses before spending the token, and resets with the window", async () => {
    const { registration_token } = await new Factories(a).regularHost();
    for (const url of [urls[0]!, urls[1]!, urls[0]!, urls[1]!]) expect((await register(url, "b".repeat(64))).status).toBe(401);

    clock.advance(WINDOW_MS - 5_000);
    const limited = await register(urls[1]!, registration_token);
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBe("5");
    expect(limited.body.error.message).toMatch(/too many registrations from this address/);

    clock.advance(5_000);
    expect((await register(urls[0]!, registration_token)).status).toBe(201);
  });
});

describe("when the KV store cannot count", () => {
  let t: TestApp;
  let stores: TestStores;
  beforeAll(async () => {
    stores = await createTestStores();
    const failing: Kv = Object.create(stores.kv, {
      incrWithTtl: { value: async () => Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })) },
    });
    t = await startTestApp({ stores: { ...stores, kv: failing }, config: { rateLimitPerToken: 1 } });
  });
  afterAll(async () => {
    await t.close();
    await stores.dispose();
  });

  it("lets requests through unlimited rather than failing them", async () => {
    const body = { token: "c".repeat(64), ...machineSpecs };
    for (let i = 0; i < 3; i++) expect((await t.http.post("/v1/hosts/register", { body })).status).toBe(401);
    const { registration_token } = await new Factories(t).regularHost();
    expect((await t.http.post("/v1/hosts/register", { body: { ...body, token: registration_token } })).status).toBe(201);
  });
});
