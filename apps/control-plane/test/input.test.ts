import { Value } from "@sinclair/typebox/value";
import { routes, type RouteDef } from "@muster/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { MALFORMED_JSON, PATH_JUNK, envelopeProblem } from "./support/fuzz.js";
import type { CallOptions, CallResult } from "./support/http.js";
import {
  bodyProperties,
  buildInputFixture,
  databaseSnapshot,
  hasValidBody,
  isTag,
  pathOf as pathWith,
  requiredFields,
  validBody as validBodyOf,
  type InputFixture,
} from "./support/inputs.js";

/*
 * Bad input, derived from the contract's route table, one kind of mistake per
 * test, with the message checked to name the field. The volume run of the same
 * generator, across every credential kind, is fuzz.test.ts.
 */

const ALL_ROUTES = Object.values(routes) as RouteDef[];
const BODY_ROUTES = ALL_ROUTES.filter((route) => route.body);
const PARAM_ROUTES = ALL_ROUTES.filter((route) => route.params);
const LIST_ROUTES = ALL_ROUTES.filter((route) => route.query && "limit" in route.query.properties);
const MAX_BODY_BYTES = 64 * 1024;

const named = (routeList: RouteDef[]) => routeList.map((route) => [route.operationId, route] as const);

let t: TestApp;
let f: Factories;
let fx: InputFixture;

const pathOf = (route: RouteDef, encodedOverrides: Record<string, string> = {}) => pathWith(fx, route, encodedOverrides);
const validBody = (route: RouteDef) => validBodyOf(fx, route);

function credentialFor(route: RouteDef): CallOptions {
  if (route.auth === "api_key") return { key: t.adminKey };
  if (route.auth === "host_token") return { hostToken: fx.host.token };
  return {};
}

function sendRaw(route: RouteDef, raw: string | undefined, path = pathOf(route)): Promise<CallResult> {
  return t.http.call(route.method.toUpperCase(), path, {
    ...credentialFor(route),
    ...(raw === undefined ? {} : { rawBody: raw, headers: { "content-type": "application/json" } }),
  });
}

/** A value of the wrong JSON type for the schema. */
function wrongTypeFor(s: unknown): unknown {
  const type = (s as { type?: string }).type;
  if (type === "integer" || type === "number") return "12";
  if (type === "boolean") return "true";
  if (type === "array") return { not: "an array" };
  if (type === "object") return "not an object";
  return 12345; // strings and unions of string literals
}

function expectEnvelope(res: CallResult, status: number, label = ""): void {
  expect(envelopeProblem(res, [status]), `${label} → ${res.status} ${JSON.stringify(res.body)}`).toBeNull();
}

/** Sends requests a few at a time; returns those whose answer is not the expected error. */
async function refusals(
  requests: { label: string; send: () => Promise<CallResult>; statuses: number[]; mentions?: string }[],
): Promise<string[]> {
  const problems: string[] = [];
  for (let i = 0; i < requests.length; i += 20) {
    await Promise.all(
      requests.slice(i, i + 20).map(async ({ label, send, statuses, mentions }) => {
        const res = await send();
        let problem = envelopeProblem(res, statuses);
        const message = (res.body as { error?: { message?: string } } | undefined)?.error?.message ?? "";
        if (!problem && mentions !== undefined && !message.includes(mentions)) problem = `message does not name '${mentions}'`;
        if (problem) problems.push(`${label}: ${problem} (${JSON.stringify(res.body)})`);
      }),
    );
  }
  return problems;
}

// ---- fixture --------------------------------------------------------------------------------

let before: Record<string, string[]>;

beforeAll(async () => {
  t = await startTestApp();
  f = new Factories(t);
  fx = await buildInputFixture(t);
  before = await databaseSnapshot(t);
});
afterAll(() => t.close());

// ---- refusals -------------------------------------------------------------------------------

describe("refused input changes nothing", () => {
  it("has a valid example body for every route with a body", () => {
    expect(BODY_ROUTES.length).toBeGreaterThan(0);
    for (const route of BODY_ROUTES) expect(hasValidBody(route), route.operationId).toBe(true);
  });

  describe.each(named(BODY_ROUTES))("%s body", (_, route) => {
    it("refuses malformed JSON as 400", async () => {
      const problems = await refusals(MALFORMED_JSON.map((raw) => ({ label: JSON.stringify(raw), send: () => sendRaw(route, raw), statuses: [400] })));
      expect(problems).toEqual([]);
    });

    it("refuses JSON that is not an object as 400", async () => {
      const texts = ["[]", "[{}]", `[${JSON.stringify(validBody(route))}]`, "42", "-1", '"text"', "true", "null"];
      const problems = await refusals(texts.map((raw) => ({ label: raw.slice(0, 60), send: () => sendRaw(route, raw), statuses: [400] })));
      expect(problems).toEqual([]);
    });

    if (!route.bodyOptional) {
      it("refuses a missing or blank body as 400", async () => {
        const problems = await refusals(
          [undefined, "", "   "].map((raw) => ({ label: JSON.stringify(raw), send: () => sendRaw(route, raw), statuses: [400] })),
        );
        expect(problems).toEqual([]);
      });
    }

    it("refuses an unknown extra field as 400 and names it", async () => {
      const res = await sendRaw(route, JSON.stringify({ ...validBody(route), unexpected_field: 1 }));
      expectEnvelope(res, 400, "extra field");
      expect(res.body.error.message).toContain("unexpected_field");
    });

    it("refuses a wrong-typed or null value in every field as 400 and names the field", async () => {
      const properties = bodyProperties(route);
      expect(properties.length).toBeGreaterThan(0);
      const problems = await refusals(
        properties.flatMap(([field, fieldSchema]) =>
          // A field that takes any JSON (a command's result) has no wrong type.
          [wrongTypeFor(fieldSchema), null].filter((value) => !Value.Check(fieldSchema, value)).map((value) => ({
            label: `${field}=${JSON.stringify(value)}`,
            send: () => sendRaw(route, JSON.stringify({ ...validBody(route), [field]: value })),
            statuses: [400],
            mentions: field,
          })),
        ),
      );
      expect(problems).toEqual([]);
    });

    it("refuses a body without each required field as 400 and names the field", async () => {
      const problems = await refusals(
        requiredFields(route).map((field) => ({
          label: `without ${field}`,
          send: () => {
            const { [field]: _, ...rest } = validBody(route);
            return sendRaw(route, JSON.stringify(rest));
          },
          statuses: [400],
          mentions: field,
        })),
      );
      expect(problems).toEqual([]);
    });

    it("answers a body over 64 KiB with 413, and one of exactly 64 KiB with 400", async () => {
      const padded = (bytes: number) => {
        const shell = '{"unexpected_padding":""}';
        return `{"unexpected_padding":"${"a".repeat(bytes - shell.length)}"}`;
      };
      expect(padded(MAX_BODY_BYTES)).toHaveLength(MAX_BODY_BYTES);
      expectEnvelope(await sendRaw(route, padded(MAX_BODY_BYTES + 1)), 413, "64 KiB + 1");
      expectEnvelope(await sendRaw(route, padded(MAX_BODY_BYTES * 4)), 413, "256 KiB");
      expectEnvelope(await sendRaw(route, padded(MAX_BODY_BYTES)), 400, "exactly 64 KiB");
    });
  });

  describe.each(named(PARAM_ROUTES))("%s path parameters", (_, route) => {
    // Raw encodings may not reach the route at all; fuzz.test.ts sends those.
    const junk = PATH_JUNK.filter(({ raw }) => !raw);

    for (const [name, paramSchema] of Object.entries(route.params!.properties)) {
      it(`answers junk in {${name}} with 400 or 404 and the envelope, never 5xx`, async () => {
        // A well-formed tag is not junk: removing an absent tag is a real request.
        const cases = junk.filter(({ value }) => !(isTag(paramSchema) && Value.Check(paramSchema, value)));
        const body = route.body ? JSON.stringify(validBody(route)) : undefined;
        const problems = await refusals(
          cases.map(({ value }) => {
            const wellFormed = Value.Check(paramSchema, value);
            // A well-formed ID that names nothing is 404; as the host of a host route it is not the token's host: 403.
            const statuses = !wellFormed ? [400] : route.auth === "host_token" && name === "id" ? [403] : [404];
            return {
              label: value.slice(0, 60),
              send: () => sendRaw(route, body, pathOf(route, { [name]: encodeURIComponent(value) })),
              statuses,
              ...(wellFormed ? {} : { mentions: name }),
            };
          }),
        );
        expect(problems).toEqual([]);
      });
    }
  });

  describe.each(named(LIST_ROUTES))("%s query", (_, route) => {
    const list = (query: Record<string, string>) => t.http.get(`${pathOf(route)}?${new URLSearchParams(query)}`, { key: t.adminKey });

    it("accepts limit 1 and 500 (the bounds)", async () => {
      const one = await list({ limit: "1" });
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.items.length).toBeLessThanOrEqual(1);
      expect((await list({ limit: "500" })).status).toBe(200);
    });

    const refuseLimits = async (limits: string[]) =>
      refusals(limits.map((limit) => ({ label: `limit=${limit}`, send: () => list({ limit }), statuses: [400], mentions: "limit" })));

    it("refuses a limit outside 1–500 or not a number as 400 naming limit", async () => {
      expect(await refuseLimits(["0", "501", "abc", "-1", "", "99999999999999999999"])).toEqual([]);
    });

    it("refuses a limit that is not a whole number rather than truncating it", async () => {
      // "1.5" and "1e3" are numbers but not integers in decimal notation; read as 1 they would silently shrink the page.
      expect(await refuseLimits(["1.5", "1e3", "2abc"])).toEqual([]);
    });

    it("refuses an unknown query parameter as 400 naming it", async () => {
      const res = await list({ bogus_param: "1" });
      expectEnvelope(res, 400, "unknown query parameter");
      expect(res.body.error.message).toContain("bogus_param");
    });

    it("refuses a cursor it never issued as 400", async () => {
      const cursors = ["garbage", "W10", Buffer.from('["not a date","x"]').toString("base64url"), "'; drop table hosts;--", "c".repeat(600)];
      const problems = await refusals(cursors.map((cursor) => ({ label: `cursor=${cursor.slice(0, 30)}`, send: () => list({ cursor }), statuses: [400] })));
      expect(problems).toEqual([]);
    });

    it("refuses a bad value of every filter as 400 naming it", async () => {
      const filters = Object.entries(route.query!.properties).filter(([name]) => name !== "limit" && name !== "cursor");
      const candidates = ["", "!!!", "x".repeat(600), "'; drop table hosts;--"];
      const cases = filters.flatMap(([name, filterSchema]) => {
        const bad = candidates.filter((value): boolean => !Value.Check(filterSchema, value));
        expect(bad.length, name).toBeGreaterThan(0);
        return bad.map((value) => ({ label: `${name}=${value.slice(0, 30)}`, send: () => list({ [name]: value }), statuses: [400], mentions: name }));
      });
      const problems = await refusals(cases);
      expect(problems).toEqual([]);
    });
  });

  describe("on every route", () => {
    /** The route's request with its valid body (if it takes one), so only the mistake under test can be refused. */
    const sendValid = (route: RouteDef, options: { query?: string; contentType?: string } = {}) =>
      t.http.call(route.method.toUpperCase(), `${pathOf(route)}${options.query ? `?${options.query}` : ""}`, {
        ...credentialFor(route),
        ...(route.body ? { rawBody: JSON.stringify(validBody(route)), headers: { "content-type": options.contentType ?? "application/json" } } : {}),
      });

    it("refuses a query parameter the route does not take as 400 naming it", async () => {
      const problems = await refusals(
        ALL_ROUTES.map((route) => ({
          label: route.operationId, send: () => sendValid(route, { query: "not_a_param=1" }), statuses: [400], mentions: "not_a_param",
        })),
      );
      expect(problems).toEqual([]);
    });

    it("refuses a body whose Content-Type is not JSON as 415", async () => {
      const types = ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x", "application/jsonp"];
      const problems = await refusals(
        BODY_ROUTES.flatMap((route) =>
          types.map((contentType) => ({ label: `${route.operationId} ${contentType}`, send: () => sendValid(route, { contentType }), statuses: [415], mentions: "application/json" })),
        ),
      );
      expect(problems).toEqual([]);
    });

    const templates = [...new Set(ALL_ROUTES.map((route) => route.path))];
    const matches = (template: string, path: string) => new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`).test(path);

    it("answers a method a known path does not take with 405 and Allow naming those it does", async () => {
      const problems: string[] = [];
      for (const template of templates) {
        const path = pathOf(ALL_ROUTES.find((route) => route.path === template)!);
        // Every template the concrete path matches routes it (GET /v1/hosts/register is getHost's, with a bad ID).
        const methods = new Set(ALL_ROUTES.filter((route) => matches(route.path, path)).map((route) => route.method.toUpperCase()));
        if (methods.has("GET")) methods.add("HEAD");
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => !methods.has(m))) {
          const res = await t.http.call(method, path, { key: t.adminKey });
          const problem = envelopeProblem(res, [405]);
          const allow = res.headers.get("allow");
          if (problem || allow !== [...methods].sort().join(", ")) problems.push(`${method} ${path}: ${problem ?? `Allow: ${allow}`}`);
        }
      }
      expect(problems).toEqual([]);
    });
  });

  it("left every row of every table as it was", async () => {
    expect(await databaseSnapshot(t)).toEqual(before);
  });
});

// ---- accepted input, after the snapshot ---------------------------------------------------

describe("accepted input", () => {
  it("takes every valid example body, so each refusal above was the mutation's doing", async () => {
    const failures: string[] = [];
    for (const route of BODY_ROUTES) {
      const res = await sendRaw(route, JSON.stringify(validBody(route)));
      if (res.status !== route.status) failures.push(`${route.operationId}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(failures).toEqual([]);
  });

  it("stores hostile but valid strings verbatim", async () => {
    const strings = [
      "'; drop table teams;--",
      "Robert'); DROP TABLE students;--",
      "<script>alert(1)</script>",
      "Ωμέγα 🚀 中文 العربية",
      "\u202eRTL override",
      "%s %n %x",
      "${jndi:ldap://x/a}",
      '\\ "quoted" \\',
      "line\u2028and\u2029paragraph separators",
      "a".repeat(100),
    ];
    for (const name of strings) {
      const team = await t.http.post("/v1/teams", { key: t.adminKey, body: { name } });
      expect(team.status, name).toBe(201);
      expect(team.body.team.name).toBe(name);

      const created = await f.regularHost({ provider: name, availability_zone: name });
      const fetched = await t.http.get(`/v1/hosts/${created.host.id}`, { key: t.adminKey });
      expect(fetched.body).toMatchObject({ provider: name, availability_zone: name });

      const creds = await f.register(created.registration_token, { hostname: name, os: name, agent_version: name.slice(0, 64) });
      expect(creds.host).toMatchObject({ hostname: name, os: name });
    }
  });

  it("answers an unpaired UTF-16 surrogate in any free-text field without a 5xx", async () => {
    const lone = "lone \ud800 surrogate";
    const host = await f.regularHost();
    const attempts = {
      "team name": () => t.http.post("/v1/teams", { key: t.adminKey, body: { name: lone } }),
      "host provider": () => t.http.post("/v1/hosts", { key: t.adminKey, body: { type: "regular", provider: lone } }),
      "api key name": () => t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: lone } }),
      "registration hostname": () =>
        t.http.post("/v1/hosts/register", { body: { token: host.registration_token, ...machineSpecs, hostname: lone } }),
    };
    const failures: string[] = [];
    for (const [field, attempt] of Object.entries(attempts)) {
      const res = await attempt();
      if (res.status >= 500) failures.push(`${field}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(failures).toEqual([]);
  });

  it("keeps extreme but valid heartbeat metrics exactly", async () => {
    const creds = await f.enrolledHost();
    const metrics = { cpu_percent: 100, memory_used_mb: 2 ** 53 - 1, disk_used_gb: 0, load_1m: 1e308, uptime_s: 1e300 };
    expect((await f.heartbeat(creds, metrics)).status).toBe(204);
    await t.runtime.deps.liveness.flush();
    const fetched = await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey });
    expect(fetched.status).toBe(200);
    expect(fetched.body.metrics).toEqual(metrics);
  });
});
