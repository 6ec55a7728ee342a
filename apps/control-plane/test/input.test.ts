import { randomBytes } from "node:crypto";
import { count } from "drizzle-orm";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import {
  ERROR_STATUS,
  ID_BODY_LENGTH,
  ID_PREFIX,
  TAG_PATTERN,
  idPattern,
  routes,
  type ErrorCode,
  type HostCredentials,
  type IdKind,
  type RouteDef,
} from "@muster/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as schema from "../src/db/schema/index.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories, machineSpecs } from "./support/factories.js";
import type { CallOptions, CallResult } from "./support/http.js";

/*
 * Bad input, derived from the contract's route table: a route added there is
 * covered here without touching this file (beyond a valid example body).
 */

const ALL_ROUTES = Object.values(routes) as RouteDef[];
const BODY_ROUTES = ALL_ROUTES.filter((route) => route.body);
const PARAM_ROUTES = ALL_ROUTES.filter((route) => route.params);
const LIST_ROUTES = ALL_ROUTES.filter((route) => route.query && "limit" in route.query.properties);
const MAX_BODY_BYTES = 64 * 1024;
const VARIANTS_PER_ROUTE = 300;

const unique = () => randomBytes(4).toString("hex");
const named = (routeList: RouteDef[]) => routeList.map((route) => [route.operationId, route] as const);

let t: TestApp;
let f: Factories;

interface Fixture {
  /** Real IDs for path parameters; the user belongs to no team yet. */
  ids: Partial<Record<IdKind, string>>;
  /** A member of the fixture's team. */
  memberId: string;
  tag: string;
  /** Enrolled: its id fills `host` path parameters and its token authenticates host routes. */
  host: HostCredentials;
  /** Unused registration token of another host. */
  pendingToken: string;
  /** Live refresh token of a third host. */
  refreshToken: string;
}
let fx: Fixture;

const TABLES = {
  users: schema.users,
  teams: schema.teams,
  team_members: schema.teamMembers,
  api_keys: schema.apiKeys,
  hosts: schema.hosts,
  host_tags: schema.hostTags,
  host_registration_tokens: schema.hostRegistrationTokens,
  host_refresh_tokens: schema.hostRefreshTokens,
  host_commands: schema.hostCommands,
  audit_log: schema.auditLog,
};

async function rowCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [name, table] of Object.entries(TABLES)) {
    const [row] = await t.stores.database.db.select({ n: count() }).from(table);
    counts[name] = row!.n;
  }
  return counts;
}

// ---- credentials, paths and bodies of a route -------------------------------------------

const KIND_OF_PATTERN = new Map((Object.keys(ID_PREFIX) as IdKind[]).map((kind) => [idPattern(kind), kind]));
const patternOf = (s: TSchema) => (s as { pattern?: string }).pattern;
const isTag = (s: TSchema) => patternOf(s) === TAG_PATTERN;

function realParam(paramSchema: TSchema): string {
  if (isTag(paramSchema)) return fx.tag;
  const kind = KIND_OF_PATTERN.get(patternOf(paramSchema) ?? "");
  const value = kind && fx.ids[kind];
  if (!value) throw new Error(`no real value for a path parameter matching ${patternOf(paramSchema)}: add one to the fixture`);
  return value;
}

/** The route's path with real IDs, except the parameters given (already URL-encoded). */
function pathOf(route: RouteDef, encodedOverrides: Record<string, string> = {}): string {
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) =>
    encodedOverrides[name] ?? encodeURIComponent(realParam(route.params!.properties[name]!)),
  );
}

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

/** A body each route accepts; everything below mutates one of these. */
const VALID_BODIES: Record<string, () => Record<string, unknown>> = {
  createUser: () => ({ email: `u-${unique()}@example.test`, name: "Input test", is_admin: false }),
  createTeam: () => ({ name: `team-${unique()}` }),
  addMember: () => ({ user_id: fx.ids.user, role: "member" }),
  createApiKey: () => ({ name: `key-${unique()}`, user_id: fx.memberId, team_id: fx.ids.team, expires_in_s: 3600 }),
  createHost: () => ({ type: "regular", provider: "aws", availability_zone: "eu-west-1a", tags: ["gpu", "zone-a"] }),
  addHostTag: () => ({ tag: "ssd" }),
  registerHost: () => ({ token: fx.pendingToken, ...machineSpecs }),
  refreshHostCredentials: () => ({ refresh_token: fx.refreshToken }),
  heartbeat: () => ({ cpu_percent: 12.5, memory_used_mb: 1024, disk_used_gb: 10, load_1m: 0.5, uptime_s: 100 }),
  sendCommand: () => ({ type: "deploy", payload: { image: "app:2", replicas: 3 }, timeout_s: 60 }),
};

function validBody(route: RouteDef): Record<string, unknown> {
  const make = VALID_BODIES[route.operationId];
  if (!make) throw new Error(`add a valid example body for ${route.operationId} to VALID_BODIES`);
  return make();
}

const bodyProperties = (route: RouteDef) =>
  Object.entries((route.body as { properties?: Record<string, TSchema> }).properties ?? {});
const requiredFields = (route: RouteDef) => ((route.body as { required?: string[] }).required ?? []);

/** A value of the wrong JSON type for the schema. */
function wrongTypeFor(s: TSchema): unknown {
  const type = (s as { type?: string }).type;
  if (type === "integer" || type === "number") return "12";
  if (type === "boolean") return "true";
  if (type === "array") return { not: "an array" };
  if (type === "object") return "not an object";
  return 12345; // strings and unions of string literals
}

// ---- the error envelope ---------------------------------------------------------------------

const CODE_OF_STATUS = new Map(Object.entries(ERROR_STATUS).map(([code, status]) => [status as number, code as ErrorCode]));

/** What a client must never read: stack frames, SQL, the driver's name. */
const LEAKS = [
  /(^|\n)\s*at\s/,
  /\bat\s+\S+\s+\(/,
  /\.(ts|js|mjs|cjs):\d+/,
  /\bselect\s/i,
  /\binsert\s/i,
  /\bdelete\s+from\b/i,
  /postgres/i,
  /pglite/i,
  /drizzle/i,
];

/** Why a response is not a well-formed error of the given status, or null when it is. */
function envelopeProblem(res: CallResult, statuses: readonly number[]): string | null {
  if (!statuses.includes(res.status)) return `status ${res.status}, expected ${statuses.join(" or ")}`;
  const body = res.body as { error?: { code?: unknown; message?: unknown } } | undefined;
  if (typeof body !== "object" || body === null || Object.keys(body).join() !== "error") return "not an error envelope";
  const { code, message } = body.error ?? {};
  if (Object.keys(body.error ?? {}).sort().join() !== "code,message") return "envelope has other fields than code and message";
  if (code !== CODE_OF_STATUS.get(res.status)) return `code ${String(code)} does not go with status ${res.status}`;
  if (typeof message !== "string" || message.trim() === "") return "empty message";
  const leak = LEAKS.find((pattern) => pattern.test(message));
  return leak ? `message leaks internals (${leak}): ${message}` : null;
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

// ---- hostile values -------------------------------------------------------------------------

/** JSON text that JavaScript values cannot produce (Infinity, own __proto__ keys, depth). */
class Raw {
  constructor(readonly json: string) {}
}
type Json = unknown;
type Entries = [string, Json][];

function toJson(value: Json): string {
  if (value instanceof Raw) return value.json;
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") return entriesToJson(Object.entries(value));
  return JSON.stringify(value) ?? "null";
}
const entriesToJson = (entries: Entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;

const nested = (depth: number, open: string, close: string, inner = "1") => new Raw(open.repeat(depth) + inner + close.repeat(depth));

const HOSTILE_VALUES: Json[] = [
  null, true, false, 0, -1, -0.5, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, Number.MIN_VALUE,
  new Raw("1e400"), new Raw("-1e400"), new Raw(`1${"0".repeat(400)}`),
  "", " ", "\u0000", "nul\u0000in the middle", "\t\n\r", "\u001b[31mred", "\u202eevil", "\ud800", "🚀".repeat(40),
  "Ω≈ç√∫ 中文 العربية", "a".repeat(5000), "'; drop table hosts;--", "\" or \"1\"=\"1", "<script>alert(1)</script>",
  "${jndi:ldap://x/a}", "{{7*7}}", "%s%s%n", "../../etc/passwd", "__proto__", "NaN", "-1", "1e999", "TRUE",
  [], [null], ["a", 1, null], {}, { nested: { deeper: { deepest: [1, { x: "y" }] } } }, { $gt: "" },
  nested(200, "[", "]"), nested(5000, "[", "]"), nested(200, '{"a":', "}"), nested(1000, '{"a":', "}"),
  new Raw('{"__proto__":{"muster_polluted":true}}'), new Raw('{"constructor":{"prototype":{"muster_polluted":true}}}'),
];

const HOSTILE_KEYS: [string, Json][] = [
  ["__proto__", new Raw('{"muster_polluted":true,"is_admin":true}')],
  ["constructor", new Raw('{"prototype":{"muster_polluted":true}}')],
  ["prototype", { muster_polluted: true }],
  ["toString", "x"],
  ["hasOwnProperty", 1],
  ["", "empty key"],
  ["\u0000", "nul key"],
  ["$where", "1 == 1"],
  ["a".repeat(1000), 1],
  ["🚀", "rocket"],
  ["is_admin", true],
];

/** A small seeded generator, so a failing variant can be found again. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Whether the contract would accept this text as the route's body. */
function contractAccepts(route: RouteDef, raw: string): boolean {
  try {
    return Value.Check(route.body!, JSON.parse(raw));
  } catch {
    return false;
  }
}

/**
 * Raw JSON bodies the contract refuses, built from the route's valid example:
 * whole-body, per-field and hostile-key variants, then random mixes; a seeded
 * shuffle picks VARIANTS_PER_ROUTE of them.
 */
function hostileBodies(route: RouteDef, seed: number): string[] {
  const random = seeded(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const valid = Object.entries(validBody(route)) as Entries;
  const fields = [...new Set([...valid.map(([k]) => k), ...bodyProperties(route).map(([k]) => k)])];
  const withField = (entries: Entries, key: string, value: Json): Entries => [...entries.filter(([k]) => k !== key), [key, value]];

  const refused = new Set<string>();
  const offer = (entries: Entries | Raw) => {
    const raw = entries instanceof Raw ? entries.json : entriesToJson(entries);
    if (!contractAccepts(route, raw)) refused.add(raw);
  };
  for (const value of HOSTILE_VALUES) offer(new Raw(toJson(value)));
  for (const field of fields) for (const value of HOSTILE_VALUES) offer(withField(valid, field, value));
  for (const [key, value] of HOSTILE_KEYS) offer([...valid, [key, value]]);
  const strings = HOSTILE_VALUES.filter((value): value is string => typeof value === "string");
  // Random mixes until there are plenty to choose from; bounded either way.
  for (let attempt = 0; attempt < 5000 && refused.size < VARIANTS_PER_ROUTE * 2; attempt++) {
    let entries = valid;
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
      const field = pick(fields);
      const current = entries.find(([k]) => k === field)?.[1];
      const value = random() < 0.3 && typeof current === "string" ? current + pick(strings) : pick(HOSTILE_VALUES);
      entries = withField(entries, field, value);
    }
    if (random() < 0.4) entries = [...entries, [pick(HOSTILE_KEYS)[0], pick(HOSTILE_VALUES)]];
    if (random() < 0.2) entries = entries.filter(() => random() < 0.5);
    offer(entries);
  }
  const list = [...refused];
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list.slice(0, VARIANTS_PER_ROUTE);
}

// ---- fixture --------------------------------------------------------------------------------

let before: Record<string, number>;

beforeAll(async () => {
  t = await startTestApp();
  f = new Factories(t);
  const team = await t.http.post("/v1/teams", { key: t.adminKey, body: { name: `input-${unique()}` } });
  expect(team.status).toBe(201);
  const key = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: `input-${unique()}` } });
  expect(key.status).toBe(201);
  const tag = "input-tag";
  const enrolled = await f.regularHost({ tags: [tag] });
  const host = await f.register(enrolled.registration_token);
  const pending = await f.regularHost();
  const refreshable = await f.enrolledHost();
  const user = await f.user();
  const member = await f.member(team.body.team.id, "member");
  const command = await t.http.post(`/v1/hosts/${host.host.id}/commands`, { key: t.adminKey, body: { type: "ping" } });
  expect(command.status).toBe(201);
  fx = {
    memberId: member.user.id,
    ids: { user: user.id, team: team.body.team.id, apiKey: key.body.api_key.id, host: host.host.id, command: command.body.id },
    tag,
    host,
    pendingToken: pending.registration_token,
    refreshToken: refreshable.refresh_token,
  };
  before = await rowCounts();
});
afterAll(() => t.close());

// ---- refusals -------------------------------------------------------------------------------

describe("refused input changes nothing", () => {
  it("has a valid example body for every route with a body", () => {
    expect(BODY_ROUTES.length).toBeGreaterThan(0);
    for (const route of BODY_ROUTES) expect(VALID_BODIES, route.operationId).toHaveProperty(route.operationId);
  });

  describe.each(named(BODY_ROUTES))("%s body", (_, route) => {
    it("refuses malformed JSON as 400", async () => {
      const texts = ['{"a":', "{", "{'single': 1}", '{"a":1}trailing', "nul", "undefined", "NaN", '{"a":1,}', "\u0000", "[1,2"];
      const problems = await refusals(texts.map((raw) => ({ label: JSON.stringify(raw), send: () => sendRaw(route, raw), statuses: [400] })));
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
          [wrongTypeFor(fieldSchema), null].map((value) => ({
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
    const wellFormedIds = (Object.keys(ID_PREFIX) as IdKind[]).map((kind) => ({
      label: `an unknown ${kind} id`,
      value: `${ID_PREFIX[kind]}-${"a".repeat(ID_BODY_LENGTH)}`,
    }));
    const junk: { label: string; value: string; raw?: boolean }[] = [
      { label: "a single letter", value: "x" },
      { label: "a short id", value: "host-123" },
      { label: "SQL", value: "'; drop table hosts;--" },
      { label: "a 10 000-character string", value: `host-${"a".repeat(10_000)}` },
      { label: "uppercase", value: `HOST-${"A".repeat(ID_BODY_LENGTH)}` },
      { label: "a NUL byte", value: "host-\u0000" },
      { label: "unicode", value: "hôst-🚀" },
      { label: "path traversal", value: "../../etc/passwd" },
      { label: "bad percent-encoding", value: "%E0%A4%A", raw: true },
      { label: "JSON", value: '{"$ne":null}' },
      ...wellFormedIds,
    ];

    for (const [name, paramSchema] of Object.entries(route.params!.properties)) {
      it(`answers junk in {${name}} with 400 or 404 and the envelope, never 5xx`, async () => {
        // A well-formed tag is not junk: removing an absent tag is a real request.
        const cases = junk.filter(({ value }) => !(isTag(paramSchema) && Value.Check(paramSchema, value)));
        const body = route.body ? JSON.stringify(validBody(route)) : undefined;
        const problems = await refusals(
          cases.map(({ label, value, raw }) => {
            const wellFormed = Value.Check(paramSchema, value);
            // A well-formed ID that names nothing is 404; on a host route the token names another host: 403.
            const statuses = !wellFormed ? [400] : route.auth === "host_token" ? [403] : [404];
            return {
              label,
              send: () => sendRaw(route, body, pathOf(route, { [name]: raw ? value : encodeURIComponent(value) })),
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

  describe("hostile values", () => {
    it.each(named(BODY_ROUTES))(
      "%s: a few hundred hostile bodies are all refused with the envelope, no 5xx, nothing internal leaked",
      async (_, route) => {
        const refused = hostileBodies(route, route.operationId.length * 7919);
        expect(refused).toHaveLength(VARIANTS_PER_ROUTE);
        const problems = await refusals(
          refused.map((raw) => ({
            label: raw.slice(0, 120),
            send: () => sendRaw(route, raw),
            statuses: [Buffer.byteLength(raw) > MAX_BODY_BYTES ? 413 : 400],
          })),
        );
        expect(problems).toEqual([]);
        expect(({} as Record<string, unknown>).muster_polluted).toBeUndefined();
        expect(Object.prototype).not.toHaveProperty("muster_polluted");
      },
      120_000,
    );
  });

  it("left every table as it was", async () => {
    expect(await rowCounts()).toEqual(before);
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
