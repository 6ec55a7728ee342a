import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routes } from "@muster/contract";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { MusterApiError, MusterConnectionError } from "../src/errors.js";
import { Transport } from "../src/transport.js";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(() => cp?.stop());

describe("Transport against a real control plane", () => {
  it("calls a route typed from the contract", async () => {
    const transport = new Transport({ baseUrl: cp.url, authHeaders: () => ({ authorization: `Bearer ${cp.adminKey}` }) });
    const me = await transport.call(routes.getMe, {});
    expect(me.role).toBe("admin");
    const page = await transport.call(routes.listHosts, { query: { limit: 5 } });
    expect(page.items).toEqual([]);
  });

  it("turns an error envelope into a MusterApiError with status, code and request ID", async () => {
    const transport = new Transport({ baseUrl: cp.url });
    const error = await transport.call(routes.getMe, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterApiError);
    expect(error).toMatchObject({ status: 401, code: "unauthorized" });
    expect((error as MusterApiError).requestId).toMatch(/.+/);
  });

  it("reports an unreachable control plane as a MusterConnectionError, after retrying a GET", async () => {
    let attempts = 0;
    const refusing: typeof fetch = async () => {
      attempts++;
      throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
    };
    const transport = new Transport({ baseUrl: "http://127.0.0.1:1", fetch: refusing, maxRetries: 2 });
    const error = await transport.call(routes.getMe, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterConnectionError);
    expect((error as Error).message).toContain("ECONNREFUSED");
    expect(attempts).toBe(3);
  });

  it("never retries a POST that may have been processed", async () => {
    let attempts = 0;
    const failing: typeof fetch = async () => {
      attempts++;
      throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
    };
    const transport = new Transport({ baseUrl: cp.url, fetch: failing, maxRetries: 3 });
    await expect(transport.call(routes.createTeam, { body: { name: "x" } })).rejects.toBeInstanceOf(MusterConnectionError);
    expect(attempts).toBe(1);
  });

  it("retries a 503 of any method, honouring Retry-After", async () => {
    const answers = [
      new Response(JSON.stringify({ error: { code: "unavailable", message: "busy" } }), { status: 503, headers: { "retry-after": "0.01" } }),
      new Response(JSON.stringify({ team: { id: "team-x", name: "x", created_at: "2026-01-01T00:00:00Z" } }), { status: 201 }),
    ];
    const transport = new Transport({ baseUrl: cp.url, fetch: async () => answers.shift()! });
    const created = await transport.call(routes.createTeam, { body: { name: "x" } });
    expect(created.team.name).toBe("x");
    expect(answers).toHaveLength(0);
  });

  it("times out a call and says so", async () => {
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_, reject) => init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason)));
    const transport = new Transport({ baseUrl: cp.url, fetch: hanging, maxRetries: 0, timeoutMs: 50 });
    const error = await transport.call(routes.getMe, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterConnectionError);
    expect((error as MusterConnectionError).timedOut).toBe(true);
  });
});

describe("Retry-After", () => {
  const busy = (retryAfter: string) =>
    new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), { status: 429, headers: { "retry-after": retryAfter } });
  const ok = () => new Response(JSON.stringify({ team: { id: "team-x", name: "x", created_at: "2026-01-01T00:00:00Z" } }), { status: 201 });

  it("understands the HTTP-date form", async () => {
    const answers = [busy(new Date(Date.now() + 20).toUTCString()), ok()];
    const transport = new Transport({ baseUrl: "http://127.0.0.1:1", fetch: async () => answers.shift()! });
    await transport.call(routes.createTeam, { body: { name: "x" } });
    expect(answers).toHaveLength(0);
  });

  it("hands back at once a pause longer than a minute instead of sleeping through it", async () => {
    let attempts = 0;
    const transport = new Transport({ baseUrl: "http://127.0.0.1:1", fetch: async () => (attempts++, busy("3600")) });
    const error = await transport.call(routes.createTeam, { body: { name: "x" } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 429, code: "rate_limited", retryAfterS: 3600 });
    expect(attempts).toBe(1);
  });
});
