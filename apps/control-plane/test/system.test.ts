import { routes, type RouteDef } from "@muster/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { listen } from "./support/channel.js";
import { Factories } from "./support/factories.js";
import type { CallResult } from "./support/http.js";

const ALL_ROUTES = Object.values(routes) as RouteDef[];

let t: TestApp;
let f: Factories;

beforeAll(async () => {
  t = await startTestApp();
  f = new Factories(t);
});
afterAll(() => t.close());

/** Swaps one property of a dependency for the length of a test, then puts it back. */
async function withStub<T extends object, K extends keyof T>(target: T, key: K, stub: T[K], run: () => Promise<void>): Promise<void> {
  const original = target[key];
  target[key] = stub;
  try {
    await run();
  } finally {
    target[key] = original;
  }
}

function expectError(res: CallResult, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
}

describe("health and readiness", () => {
  it("answers /healthz with 200", async () => {
    const res = await t.http.get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("answers /readyz with 200 and every store ok", async () => {
    const res = await t.http.get("/readyz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ready", checks: { database: "ok", kv: "ok" } });
  });

  it.each(["database", "kv"])("answers /readyz with 503 unavailable and Retry-After when the %s check fails", async (name) => {
    const { readiness } = t.runtime.deps;
    await withStub(readiness, name, () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:1")), async () => {
      const res = await t.http.get("/readyz");
      expectError(res, 503, "unavailable");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(res.body.error.message).toContain(name);
      expect(res.body.error.message).not.toContain("ECONNREFUSED");
    });
    expect((await t.http.get("/readyz")).status).toBe(200);
  });

  it("answers /readyz with 503 when a check never answers, within its timeout", async () => {
    await withStub(t.runtime.deps.readiness, "kv", () => new Promise<void>(() => {}), async () => {
      const started = Date.now();
      const res = await t.http.get("/readyz");
      expectError(res, 503, "unavailable");
      expect(res.headers.get("retry-after")).not.toBeNull();
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });
});

describe("OpenAPI document", () => {
  let doc: any;
  beforeAll(async () => {
    const res = await t.http.get("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    doc = res.body;
  });

  it("is OpenAPI 3.1", () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toEqual(expect.any(String));
  });

  it("has every route of the contract with its method, operationId and path parameters", () => {
    for (const route of ALL_ROUTES) {
      const operation = doc.paths?.[route.path]?.[route.method];
      expect(operation, `${route.method} ${route.path}`).toBeDefined();
      expect(operation.operationId).toBe(route.operationId);
      expect(operation.responses).toHaveProperty(String(route.status));
      const pathParams = operation.parameters.filter((p: { in: string }) => p.in === "path").map((p: { name: string }) => p.name);
      expect(pathParams.sort()).toEqual([...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort());
      if (route.body) expect(operation.requestBody.required).toBe(!route.bodyOptional);
    }
    const documented = Object.values(doc.paths).flatMap((item: any) => Object.keys(item)).length;
    expect(documented).toBe(ALL_ROUTES.length);
  });

  it("names a licence, and lists no empty servers or tags", () => {
    expect(doc.info.license).toEqual({ name: expect.any(String), identifier: expect.stringMatching(/^[A-Za-z0-9.+-]+$/) });
    expect(doc).not.toHaveProperty("tags");
    expect(doc.servers).toEqual([{ url: "http://localhost" }]);
  });

  it("describes /healthz, /readyz and /metrics, with the metrics as text", () => {
    expect(doc.paths["/healthz"].get.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Health" });
    expect(doc.paths["/readyz"].get.responses).toHaveProperty("503");
    expect(Object.keys(doc.paths["/metrics"].get.responses["200"].content)).toEqual(["text/plain"]);
  });

  it("lists 400 on every operation (any may refuse a query parameter) and 415 on every one that takes a body", () => {
    for (const route of ALL_ROUTES) {
      const { responses } = doc.paths[route.path][route.method];
      expect(responses, route.operationId).toHaveProperty("400");
      if (route.body) expect(responses, route.operationId).toHaveProperty("415");
    }
  });

  it("names the server the caller reached, through a trusted proxy as the proxy says, and never from anyone else's headers", async () => {
    const forwarded = { "x-forwarded-proto": "https", "x-forwarded-host": "muster.example.com" };
    const servedDirect = await listen(t);
    const behindProxy = await startTestApp({ config: { trustedProxies: ["127.0.0.1"] } });
    const servedProxied = await listen(behindProxy);
    try {
      const serversOf = async (baseUrl: string, headers: Record<string, string>) =>
        ((await (await fetch(`${baseUrl}/openapi.json`, { headers })).json()) as { servers: unknown }).servers;
      expect(await serversOf(servedDirect.baseUrl, forwarded)).toEqual([{ url: servedDirect.baseUrl }]);
      expect(await serversOf(servedProxied.baseUrl, forwarded)).toEqual([{ url: "https://muster.example.com" }]);
      expect(await serversOf(servedProxied.baseUrl, { "x-forwarded-host": "evil.example/<script>" })).toEqual([{ url: servedProxied.baseUrl }]);
    } finally {
      await servedDirect.close();
      await servedProxied.close();
      await behindProxy.close();
    }
  });

  it("names Host, User, Team, ApiKey, AuditEntry and ErrorEnvelope as components", () => {
    for (const name of ["Host", "User", "Team", "ApiKey", "AuditEntry", "ErrorEnvelope"]) {
      expect(doc.components.schemas, name).toHaveProperty(name);
    }
  });

  it("describes every error response with the ErrorEnvelope", () => {
    for (const route of ALL_ROUTES) {
      const { responses } = doc.paths[route.path][route.method];
      for (const [status, response] of Object.entries<any>(responses)) {
        if (Number(status) < 400) continue;
        expect(response.content["application/json"].schema, `${route.operationId} ${status}`).toEqual({
          $ref: "#/components/schemas/ErrorEnvelope",
        });
      }
    }
  });

  it("resolves every $ref within the document", () => {
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (node === null || typeof node !== "object") return;
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string") refs.push(value);
        else walk(value);
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of new Set(refs)) {
      expect(ref, ref).toMatch(/^#\//);
      const target = ref
        .slice(2)
        .split("/")
        .map((part) => decodeURIComponent(part).replaceAll("~1", "/").replaceAll("~0", "~"))
        .reduce<any>((node, part) => node?.[part], doc);
      expect(target, `unresolved ${ref}`).toBeTypeOf("object");
    }
  });
});

describe("metrics", () => {
  it("serves Prometheus text at /metrics with request, heartbeat and host figures", async () => {
    const host = await f.enrolledHost();
    expect((await f.heartbeat(host)).status).toBe(204);

    const res = await t.http.get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = String(res.body);
    for (const name of ["muster_http_requests_total", "muster_heartbeats_total", "muster_hosts"]) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} `, "m"));
    }
    expect(Number(/^muster_heartbeats_total (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^muster_hosts\{status="online"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    // Requests are counted by route pattern, never by raw path: host IDs would explode the label set.
    expect(text).toMatch(/muster_http_requests_total\{[^}]*route="\/v1\/hosts\/:id\/heartbeat"[^}]*status="204"/);
    expect(text).not.toContain(host.host.id);
  });
});

describe("errors outside any route", () => {
  it("answers an unknown path with the 404 envelope", async () => {
    for (const path of ["/nope", "/v1/nothing-here", "/v1/hosts/x/y/z"]) {
      expectError(await t.http.get(path, { key: t.adminKey }), 404, "not_found");
    }
  });

  it("answers an unhandled internal error with 500 internal and never its message", async () => {
    const host = await f.enrolledHost();
    const secret = "secret internal detail SELECT * FROM x";
    await withStub(t.runtime.deps.hostTokens, "verify", async () => Promise.reject(new Error(secret)), async () => {
      const res = await f.heartbeat(host);
      expectError(res, 500, "internal");
      expect(JSON.stringify(res.body)).not.toContain("secret internal detail");
      expect(JSON.stringify(res.body)).not.toContain("SELECT");
      expect(res.body.error.message).not.toMatch(/\bat\s+\S+\s+\(|\.(ts|js):\d+/);
    });
    expect((await f.heartbeat(host)).status).toBe(204);
  });

  it("answers a store that has gone away with 503 unavailable and Retry-After", async () => {
    const host = await f.enrolledHost();
    const gone = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:5432"), { code: "ECONNREFUSED" });
    await withStub(t.runtime.deps.hostTokens, "verify", async () => Promise.reject(gone), async () => {
      const res = await f.heartbeat(host);
      expectError(res, 503, "unavailable");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(res.body.error.message).not.toContain("10.0.0.1");
    });
  });
});
