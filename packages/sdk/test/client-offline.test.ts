import { describe, expect, it } from "vitest";
import { routes } from "@muster/contract";
import { MusterApiError, MusterClient, MusterConnectionError, MusterError } from "../src/index.js";
import { backoffMs } from "../src/transport.js";

/*
 * The client's own wiring, with a scripted fetch and no control plane: which
 * route each method calls, which headers it sends, and how it passes options
 * to the transport. Behaviour against the real API is in client.test.ts.
 */

const BASE = "http://muster.test";
const HOST = `host-${"a".repeat(26)}`;
const TEAM = `team-${"b".repeat(26)}`;
const USER = `usr-${"c".repeat(26)}`;
const KEY = `key-${"d".repeat(26)}`;
const COMMAND = `cmd-${"e".repeat(26)}`;
const WEBHOOK = `whk-${"f".repeat(26)}`;

interface Sent {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
}

function scripted(answer: (sent: Sent) => Response | Promise<Response> = () => json({ items: [], next_cursor: null })) {
  const sent: Sent[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request: Sent = {
      method: init?.method ?? "GET",
      url: new URL(String(input)),
      headers: new Headers(init?.headers),
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    sent.push(request);
    return answer(request);
  };
  return { sent, fetch };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const envelope = (status: number, code: string, headers: Record<string, string> = {}) =>
  json({ error: { code, message: `${code} happened` } }, status, headers);
const networkDown = () => Promise.reject(new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } }));

describe("MusterClient wiring", () => {
  it("covers every operator endpoint of the contract, each with its method and path", async () => {
    const { sent, fetch } = scripted((request) => (request.method === "DELETE" ? new Response(null, { status: 204 }) : json({ items: [], next_cursor: null })));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "msk_test", fetch });
    await client.me();
    await client.users.create({ email: "a@example.com" });
    await client.users.listPage();
    await client.teams.create({ name: "t" });
    await client.teams.listPage();
    await client.teams.members.add(TEAM, { user_id: USER, role: "member" });
    await client.teams.members.remove(TEAM, USER);
    await client.apiKeys.create({ name: "k" });
    await client.apiKeys.listPage();
    await client.apiKeys.revoke(KEY);
    await client.hosts.create({ type: "byoc" });
    await client.hosts.listPage();
    await client.hosts.get(HOST);
    await client.hosts.delete(HOST);
    await client.hosts.regenerateToken(HOST);
    await client.hosts.tags.add(HOST, "gpu");
    await client.hosts.tags.remove(HOST, "gpu");
    await client.hosts.tags.list(HOST);
    await client.hosts.commands.send(HOST, { type: "ping" });
    await client.hosts.commands.get(HOST, COMMAND);
    await client.hosts.commands.listPage(HOST, { status: "queued" });
    await client.hosts.probe(HOST);
    await client.audit.listPage();
    await client.teams.members.listPage(TEAM);
    await client.webhooks.create({ url: "https://hooks.example.com/muster", types: ["host.*"] });
    await client.webhooks.list().toArray();
    await client.webhooks.delete(WEBHOOK);
    await client.webhooks.deliveries(WEBHOOK).toArray();
    // The stream ends at once here (the answer is no stream): the watch stops instead of reconnecting.
    const watching = new AbortController();
    for await (const event of client.events.watch({ signal: watching.signal, onReconnect: () => watching.abort() })) expect.fail(`no event was sent: ${event.id}`);
    await client.system.rotateSigningKey();
    await client.system.ca();
    await client.system.rotateCa({ action: "start" });

    const called = new Set(sent.map((s) => `${s.method} ${s.url.pathname}`));
    const operatorRoutes = Object.values(routes).filter((route) => route.auth === "api_key");
    const expected = operatorRoutes.map((route) => {
      const path = route.path.replace("{id}", route.operationId.includes("ApiKey") ? KEY : route.operationId.includes("Webhook") ? WEBHOOK : HOST)
        .replace("{command_id}", COMMAND).replace("{team_id}", TEAM).replace("{user_id}", USER).replace("{tag}", "gpu");
      return `${route.method.toUpperCase()} ${path}`;
    });
    expect([...called].sort()).toEqual([...new Set(expected)].sort());
    expect(sent.every((s) => s.headers.get("authorization") === "Bearer msk_test")).toBe(true);
  });

  it("sends the body and query the caller gave, and the user agent", async () => {
    const { sent, fetch } = scripted(() => json({ items: [], next_cursor: null }));
    const client = new MusterClient({ baseUrl: `${BASE}/`, apiKey: "msk_test", fetch, userAgent: "my-service/1.0" });
    await client.hosts.listPage({ tag: "gpu", status: "online", limit: 7 });
    await client.teams.members.add(TEAM, { user_id: USER, role: "owner" }).catch(() => {});
    expect(sent[0]!.url.href).toBe(`${BASE}/v1/hosts?tag=gpu&status=online&limit=7`);
    expect(sent[0]!.headers.get("user-agent")).toBe("my-service/1.0");
    expect(sent[1]!.body).toEqual({ user_id: USER, role: "owner" });
  });

  it("encodes path parameters", async () => {
    const { sent, fetch } = scripted(() => new Response(null, { status: 204 }));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "msk_test", fetch });
    await client.hosts.tags.remove(HOST, "zone=eu:1");
    expect(sent[0]!.url.pathname).toBe(`/v1/hosts/${HOST}/tags/zone%3Deu%3A1`);
  });
});

describe("MusterClient retries, timeouts and cancellation", () => {
  it("retries a GET and a DELETE after a network failure, with its maxRetries", async () => {
    const { sent, fetch } = scripted(networkDown);
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch, maxRetries: 1 });
    await expect(client.hosts.get(HOST)).rejects.toBeInstanceOf(MusterConnectionError);
    await expect(client.hosts.delete(HOST)).rejects.toBeInstanceOf(MusterConnectionError);
    expect(sent.map((s) => s.method)).toEqual(["GET", "GET", "DELETE", "DELETE"]);
  });

  it("retries a command send after a lost connection, a 503 and a 500, every time with the same Idempotency-Key", async () => {
    const answers = [networkDown, () => envelope(503, "unavailable", { "retry-after": "0" }), () => envelope(500, "internal"), () => json({ id: COMMAND }, 201)];
    const { sent, fetch } = scripted(() => answers.shift()!());
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch, maxRetries: 3 });
    expect(await client.hosts.commands.send(HOST, { type: "ping" })).toEqual({ id: COMMAND });
    const keys = sent.map((s) => s.headers.get("idempotency-key"));
    expect(keys).toHaveLength(4);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);

    // Each send is a new request with a key of its own, unless the caller names one.
    await client.hosts.commands.send(HOST, { type: "ping" }).catch(() => {});
    await client.hosts.commands.send(HOST, { type: "ping" }, { idempotencyKey: "deploy-42" }).catch(() => {});
    expect(sent[4]!.headers.get("idempotency-key")).not.toBe(keys[0]);
    expect(sent.at(-1)!.headers.get("idempotency-key")).toBe("deploy-42");
  });

  it("lists a host's commands page by page, with the status filter", async () => {
    const pages = [json({ items: [{ id: "a" }], next_cursor: "c1" }), json({ items: [{ id: "b" }], next_cursor: null })];
    const { sent, fetch } = scripted(() => pages.shift()!);
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch });
    expect(await client.hosts.commands.list(HOST, { status: "failed", limit: 1 }).toArray()).toEqual([{ id: "a" }, { id: "b" }]);
    expect(sent.map((s) => s.url.pathname + s.url.search)).toEqual([
      `/v1/hosts/${HOST}/commands?status=failed&limit=1`,
      `/v1/hosts/${HOST}/commands?status=failed&limit=1&cursor=c1`,
    ]);
  });

  it("never retries a POST that may have been processed", async () => {
    const { sent, fetch } = scripted(networkDown);
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch, maxRetries: 3 });
    await expect(client.hosts.create({ type: "byoc" })).rejects.toBeInstanceOf(MusterConnectionError);
    const { sent: sent500, fetch: fetch500 } = scripted(() => envelope(500, "internal"));
    const client500 = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch: fetch500, maxRetries: 3 });
    await expect(client500.hosts.regenerateToken(HOST)).rejects.toMatchObject({ status: 500, code: "internal" });
    expect(sent).toHaveLength(1);
    expect(sent500).toHaveLength(1);
  });

  it("retries a POST refused with 429, after the Retry-After the API asked for", async () => {
    let calls = 0;
    const { sent, fetch } = scripted(() =>
      ++calls === 1 ? envelope(429, "rate_limited", { "retry-after": "0.3" }) : json({ team: { id: TEAM, name: "t", created_at: "2026-01-01T00:00:00Z" } }, 201),
    );
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch });
    const started = Date.now();
    expect((await client.teams.create({ name: "t" })).team.id).toBe(TEAM);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(sent).toHaveLength(2);
  });

  it("gives up on a 503 after maxRetries, with the API's error", async () => {
    const { sent, fetch } = scripted(() => envelope(503, "unavailable", { "retry-after": "0.01" }));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch, maxRetries: 2 });
    const error = await client.me().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterApiError);
    expect(error).toMatchObject({ status: 503, code: "unavailable", retryAfterS: 0.01 });
    expect(sent).toHaveLength(3);
  });

  it("does not retry an API error that a retry cannot fix", async () => {
    const { sent, fetch } = scripted(() => envelope(404, "not_found"));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch, maxRetries: 3 });
    await expect(client.hosts.get(HOST)).rejects.toMatchObject({ status: 404 });
    expect(sent).toHaveLength(1);
  });

  const hanging: typeof fetch = (_url, init) =>
    new Promise((_, reject) => init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason)));

  it("times out with the client's timeoutMs, or the call's own", async () => {
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch: hanging, maxRetries: 0, timeoutMs: 50 });
    const error = await client.hosts.get(HOST).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterConnectionError);
    expect(error).toMatchObject({ timedOut: true });
    expect((error as Error).message).toContain("50 ms");

    const patient = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch: hanging, maxRetries: 0, timeoutMs: 60_000 });
    const started = Date.now();
    await expect(patient.hosts.create({ type: "byoc" }, { timeoutMs: 80 })).rejects.toMatchObject({ timedOut: true });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("aborts a call in flight through its signal, with the caller's reason", async () => {
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch: hanging });
    const controller = new AbortController();
    const call = client.teams.members.remove(TEAM, USER, { signal: controller.signal });
    controller.abort(new Error("shutting down"));
    await expect(call).rejects.toThrow("shutting down");
  });
});

describe("Paginator", () => {
  it("fails loudly instead of looping when the API repeats a cursor", async () => {
    const { sent, fetch } = scripted(() => json({ items: [{ id: HOST }], next_cursor: "same" }));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch });
    const error = await client.hosts.list().toArray().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterError);
    expect((error as Error).message).toMatch(/cursor/);
    expect(sent).toHaveLength(2);
  });

  it("passes the cursor of each page to the next request and keeps the filters", async () => {
    const pages = [
      { items: [{ id: "a" }], next_cursor: "c1" },
      { items: [{ id: "b" }], next_cursor: "c2" },
      { items: [{ id: "c" }], next_cursor: null },
    ];
    let index = 0;
    const { sent, fetch } = scripted(() => json(pages[index++]));
    const client = new MusterClient({ baseUrl: BASE, apiKey: "k", fetch });
    const ids = (await client.audit.list({ action: "host.created", limit: 1 }).toArray()).map((e) => e.id);
    expect(ids).toEqual(["a", "b", "c"]);
    expect(sent.map((s) => s.url.search)).toEqual([
      "?action=host.created&limit=1",
      "?action=host.created&limit=1&cursor=c1",
      "?action=host.created&limit=1&cursor=c2",
    ]);
  });
});

describe("backoff", () => {
  it("grows exponentially with full jitter, under a cap", () => {
    const samples = (attempt: number) => Array.from({ length: 200 }, () => backoffMs(attempt));
    for (const [attempt, ceiling] of [[0, 250], [3, 2000], [20, 10_000]] as const) {
      const values = samples(attempt);
      expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...values)).toBeLessThanOrEqual(ceiling);
      expect(new Set(values).size).toBeGreaterThan(150);
    }
    expect(Math.max(...samples(3))).toBeGreaterThan(250);
  });
});
