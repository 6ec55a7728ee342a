import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { TObject } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { ID_BODY_LENGTH, routes, type RouteDef } from "@muster/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { listen, upgradeRequest } from "./support/channel.js";
import { Factories } from "./support/factories.js";
import { HOSTILE_KEYS, HOSTILE_STRINGS, MALFORMED_JSON, PATH_JUNK, boundaryValues, envelopeProblem, schemaAccepts, seeded, toJson } from "./support/fuzz.js";
import type { CallResult } from "./support/http.js";
import { buildInputFixture, databaseSnapshot, hostileBodies, isTag, pathOf, validBody, type InputFixture } from "./support/inputs.js";

/*
 * The fuzz run: every route of the contract (and the system endpoints and the
 * channel path, which are not in it) with every kind of credential, against
 * inputs generated from the route's schemas. Whatever comes back must be the
 * expected status in the SPEC §1 envelope, never a 5xx, and the database must
 * be exactly as it was. Requests that would be accepted writes are never sent.
 *
 * Everything random is drawn from one seed; a failure prints it and the
 * request. Replay with MUSTER_FUZZ_SEED=<seed>.
 */

const SEED = Number(process.env.MUSTER_FUZZ_SEED ?? 20_261_123);
const MIN_REQUESTS = 10_000;
const BODIES_PER_ROUTE = 300;
const MAX_BODY_BYTES = 64 * 1024;
const IN_FLIGHT = 25;
/** The share of requests sent over a socket to the real server (heartbeat lane, Node's header parsing) rather than in-process. */
const SOCKET_SHARE = 0.15;
/**
 * Kept in-process: a request head over 16 KiB, which Node's HTTP parser answers
 * with a bare 431 before any of our code runs, and bodies over the limit, whose
 * early 413 races the client still writing them.
 */
const socketable = (request: Sent) => request.path.length <= 8 * 1024 && (request.body?.length ?? 0) <= MAX_BODY_BYTES;

const ALL_ROUTES = Object.values(routes) as RouteDef[];
const named = (routeList: RouteDef[]) => routeList.map((route) => [route.operationId, route] as const);

type Headers = Record<string, string>;

interface Credential {
  name: string;
  headers: Headers;
  /** A live operator key: the admin's, or a key acting in a team that owns none of the fixture's resources. */
  operator?: "admin" | "team";
  /** A host token whose signature and claims verify: the fixture host's live one, another host's, or the fixture host's revoked one. */
  host?: "self" | "other" | "revoked";
}

interface Input {
  label: string;
  path: string;
  /** Raw query string, without the "?". */
  query?: string;
  body?: string;
  contentType?: string;
  /** What the input alone earns once past authentication; absent for a valid request. */
  statuses?: number[];
  /** The path may not reach the route at all (it normalises to another path): 404 whatever the credential. */
  unrouted?: boolean;
}

interface Sent {
  label: string;
  method: string;
  path: string;
  headers: Headers;
  body?: string;
  statuses: number[];
  credential: string;
}

let t: TestApp;
let served: Awaited<ReturnType<typeof listen>>;
let fx: InputFixture;
let credentials: Credential[];
let before: Record<string, string[]>;
let sent = 0;
const random = seeded(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

// ---- credentials ------------------------------------------------------------------------------

const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
const hostToken = (value: string) => ({ "x-host-token": value });
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

async function buildCredentials(): Promise<Credential[]> {
  const f = new Factories(t);
  const revoked = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: "fuzz-revoked" } });
  expect((await t.http.delete(`/v1/api-keys/${revoked.body.api_key.id}`, { key: t.adminKey })).status).toBe(204);
  // The fixture host registers again: its earlier token still verifies, but speaks for credentials it no longer has.
  const revokedToken = fx.host.token;
  const regenerated = await t.http.post(`/v1/hosts/${fx.host.host.id}/token`, { key: t.adminKey });
  fx.host = await f.register(regenerated.body.registration_token);
  const deleted = await f.enrolledHost();
  expect((await t.http.delete(`/v1/hosts/${deleted.host.id}`, { key: t.adminKey })).status).toBe(204);
  const claims = JSON.parse(Buffer.from(fx.host.token.split(".")[1]!, "base64url").toString("utf8")) as object;

  return [
    { name: "no credential", headers: {} },
    { name: "the admin key", headers: bearer(t.adminKey), operator: "admin" },
    { name: "another team's owner key", headers: bearer(fx.outsiders.owner.key), operator: "team" },
    { name: "another team's member key", headers: bearer(fx.outsiders.member.key), operator: "team" },
    { name: "the host's token", headers: hostToken(fx.host.token), host: "self" },
    { name: "a deleted host's token", headers: hostToken(deleted.token), host: "other" },
    { name: "the host's token from before it registered again", headers: hostToken(revokedToken), host: "revoked" },
    { name: "a revoked API key", headers: bearer(revoked.body.key) },
    { name: "the host's token as Bearer", headers: bearer(fx.host.token) },
    { name: "the admin key as host token", headers: hostToken(t.adminKey) },
    { name: "a registration token as Bearer", headers: bearer(fx.pendingToken) },
    { name: "a registration token as host token", headers: hostToken(fx.pendingToken) },
    { name: "a refresh token as Bearer", headers: bearer(fx.refreshToken) },
    { name: "a refresh token as host token", headers: hostToken(fx.refreshToken) },
    { name: "random bytes as Bearer", headers: bearer(randomBytes(32).toString("hex")) },
    { name: "a bare Bearer", headers: { authorization: "Bearer" } },
    { name: "Basic credentials", headers: { authorization: "Basic YWRtaW46YWRtaW4=" } },
    { name: "a 4 KB Bearer value", headers: bearer("k".repeat(4096)) },
    { name: "Latin-1 bytes as Bearer", headers: bearer("\u00ff\u00fe".repeat(16)) },
    { name: "SQL as Bearer", headers: bearer("' or 1=1--") },
    { name: "a JWT-shaped junk host token", headers: hostToken("a.b.c") },
    { name: "an alg-none host token", headers: hostToken(`${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`) },
    { name: "junk in both headers", headers: { ...bearer("x"), ...hostToken("y") } },
  ];
}

// ---- inputs -----------------------------------------------------------------------------------

/** Bad values of each path parameter; one that matches the schema names nothing, so it is 404 (403 for the host of a host route: not the token's host). */
function pathInputs(route: RouteDef): Input[] {
  const body = route.body ? JSON.stringify(validBody(fx, route)) : undefined;
  return Object.entries(route.params?.properties ?? {}).flatMap(([name, schema]) => {
    const candidates: { value: string; raw?: boolean }[] = [...PATH_JUNK, ...boundaryValues(schema).filter((v): v is string => typeof v === "string" && v !== "").map((value) => ({ value }))];
    return candidates.flatMap(({ value, raw }): Input[] => {
      const wellFormed = !raw && Value.Check(schema, value);
      // Removing a tag the host does not have is a real request, not junk.
      if (wellFormed && isTag(schema)) return [];
      const statuses = !wellFormed ? [400] : route.auth === "host_token" && name === "id" ? [403] : [404];
      const path = pathOf(fx, route, { [name]: raw ? value : encodeURIComponent(value) });
      return [{ label: `{${name}}=${value.slice(0, 40)}`, path, ...(body ? { body } : {}), statuses, ...(raw ? { unrouted: true } : {}) }];
    });
  });
}

/** What the server's validator makes of a query: whole numbers for integers, then the schema. */
function queryAccepted(schema: TObject, query: string): boolean {
  const given = Object.fromEntries(new URLSearchParams(query));
  for (const [name, value] of Object.entries(given)) {
    if ((schema.properties[name] as { type?: string } | undefined)?.type === "integer" && !/^-?\d+$/.test(value)) return false;
  }
  return Value.Check(schema, Value.Default(schema, Value.Convert(schema, given)));
}

const RAW_QUERIES = [
  "limit=1&limit=2", "limit[]=1", "__proto__=1", "__proto__[is_admin]=true", "constructor[prototype][x]=1", "%zz=1", "limit=%00",
  "=1", "&&&", "limit", `${"a=1&".repeat(2000)}b=2`, "limit=1;drop", `cursor=${"c".repeat(100_000)}`, "limit=+1", "limit=%2B1",
];

/** The names a raw query string gives the server (which skips an empty name). */
const namesIn = (query: string) => [...new URLSearchParams(query).keys()].filter((name) => name !== "");

/** Parameters no route takes, on any route (with its valid body, so the parameter alone decides). */
function unknownParameterInputs(route: RouteDef): Input[] {
  const body = route.body ? { body: JSON.stringify(validBody(fx, route)) } : {};
  return HOSTILE_KEYS.map(([name]) => name)
    .filter((name) => name !== "")
    .map((name) => ({ label: `unknown ?${name.slice(0, 20)}`, path: pathOf(fx, route), query: new URLSearchParams({ [name]: "1" }).toString(), ...body, statuses: [400] }));
}

/** Each query parameter set to its schema's boundaries and to hostile strings, and raw junk. */
function queryInputs(route: RouteDef): Input[] {
  const path = pathOf(fx, route);
  // A route that takes no parameter refuses any name at all.
  if (!route.query) {
    return RAW_QUERIES.map((query) => ({ label: `?${query.slice(0, 40)}`, path, query, ...(namesIn(query).length > 0 ? { statuses: [400] } : {}) }));
  }
  const schema = route.query;
  const perParameter = Object.entries(schema.properties).flatMap(([name, property]) =>
    [...boundaryValues(property), ...HOSTILE_STRINGS].map((value) => {
      const query = new URLSearchParams({ [name]: typeof value === "string" ? value : toJson(value) }).toString();
      // A cursor the schema accepts is still refused when the server never issued it.
      const statuses = !queryAccepted(schema, query) ? [400] : name === "cursor" ? [200, 400] : undefined;
      return { label: `?${query.slice(0, 60)}`, path, query, ...(statuses ? { statuses } : {}) };
    }),
  );
  const raw = RAW_QUERIES.map((query) => ({ label: `?${query.slice(0, 40)}`, path, query, statuses: [200, 400] }));
  return [...perParameter, ...raw];
}

/** Content types and what a body refused for its content (an unknown field) earns under each: 415 unless it is JSON or absent. */
const CONTENT_TYPES: [string, number][] = [
  ["text/plain", 415], ["application/x-www-form-urlencoded", 415], ["multipart/form-data; boundary=x", 415],
  ["application/json; charset=utf-16", 400], ["application/merge-patch+json", 400], ["APPLICATION/JSON", 400],
  ["application/xml", 415], ["application/json, text/plain", 415], ["application/jsonx", 415], ["", 400],
];

/** Bodies the contract refuses (generated from its schema), malformed JSON, other content types, oversize bodies. */
function bodyInputs(route: RouteDef): Input[] {
  const path = pathOf(fx, route);
  const sized = (body: string) => [Buffer.byteLength(body) > MAX_BODY_BYTES ? 413 : 400];
  const refused = JSON.stringify({ ...validBody(fx, route), unexpected_field: 1 });
  return [
    ...hostileBodies(fx, route, SEED ^ route.operationId.length, BODIES_PER_ROUTE).map((body) => ({
      label: `body ${body.slice(0, 80)}`, path, body, statuses: sized(body),
    })),
    ...MALFORMED_JSON.map((body) => ({ label: `malformed ${JSON.stringify(body)}`, path, body, statuses: [400] })),
    ...CONTENT_TYPES.map(([contentType, status]) => ({ label: `content-type "${contentType}"`, path, body: refused, contentType, statuses: [status] })),
    { label: "a form body", path, body: "a=1&b=2", contentType: "application/x-www-form-urlencoded", statuses: [415] },
    { label: "a valid body as text/plain", path, body: JSON.stringify(validBody(fx, route)), contentType: "text/plain", statuses: [415] },
    ...[MAX_BODY_BYTES + 1, 1024 * 1024].map((bytes) => ({
      label: `${bytes}-byte body`, path, body: `{"pad":"${"a".repeat(bytes - 10)}"}`, statuses: [413],
    })),
    ...(route.bodyOptional ? [] : [{ label: "no body", path, statuses: [400] }]),
  ];
}

/**
 * Well-formed bodies carrying the wrong secret: other kinds of credential, junk,
 * the other route's secret. (Not a used refresh token: presenting one revokes
 * its host's credentials, a change this run must not make.)
 */
function wrongSecretInputs(route: RouteDef): Input[] {
  const field = route.operationId === "registerHost" ? "token" : "refresh_token";
  const secrets = [fx.host.token, t.adminKey, randomBytes(32).toString("hex"), "x", "' or 1=1--", fx.outsiders.owner.key,
    route.operationId === "registerHost" ? fx.refreshToken : fx.pendingToken];
  return secrets.map((secret) => {
    const body = JSON.stringify({ ...validBody(fx, route), [field]: secret });
    return { label: `${field}=${secret.slice(0, 20)}`, path: pathOf(fx, route), body, statuses: [schemaAccepts(route.body!, body) ? 401 : 400] };
  });
}

// ---- expectations -----------------------------------------------------------------------------

/**
 * The statuses a request may get: authentication first (401), then the input
 * (400, 413, or what its values earn), then the caller's role on a valid
 * request. null: a valid write with a credential that may make it, never sent.
 * Registration and refresh may also be rate limited (429, SPEC §1).
 */
function expected(route: RouteDef, credential: Credential, input: Input): number[] | null {
  const statuses = expectedOnRoute(route, credential, input);
  return statuses && input.unrouted ? [...statuses, 404] : statuses;
}

function expectedOnRoute(route: RouteDef, credential: Credential, input: Input): number[] | null {
  const limited = route.auth === "body_secret" ? [429] : [];
  const authenticated =
    route.auth === "api_key" ? credential.operator !== undefined : route.auth === "host_token" ? credential.host !== undefined : true;
  if (!authenticated) return input.statuses?.includes(413) ? [401, 413] : [401];
  const teamKey = route.auth === "api_key" && credential.operator === "team";
  if (input.statuses) {
    const refused = input.statuses.every((status) => status === 400 || status === 413 || status === 415);
    // Past validation, another host's token is refused for the path's host, and a revoked one for what it is.
    if (route.auth === "host_token" && !refused && credential.host === "other") return [403];
    if (route.auth === "host_token" && !refused && credential.host === "revoked") return [401, ...input.statuses];
    // Another team's key may be refused by role (403), or, on a resource of the fixture's team, not see it (404).
    return [...input.statuses, ...(teamKey && !refused ? [403, ...(route.params ? [404] : [])] : []), ...limited];
  }
  if (route.auth === "host_token") {
    // A verified token speaks only for its own host, and only while the host still has those credentials (Liveness.authorize).
    if (credential.host === "other") return [403];
    if (credential.host === "revoked") return [401];
  }
  if (route.method === "get") return teamKey ? [200, 403, 404] : [200];
  return teamKey ? [403, 404] : null;
}

// ---- sending ----------------------------------------------------------------------------------

function describeRequest(request: Sent, viaSocket: boolean): string {
  const body = request.body === undefined ? "" : ` body(${request.body.length})=${JSON.stringify(request.body.slice(0, 200))}`;
  const how = viaSocket ? " over a socket" : "";
  return `[seed ${SEED}] (${request.label}) ${request.method} ${request.path.slice(0, 300)}${how} with ${request.credential}${body}`;
}

/** One request on a connection of its own (no keep-alive race with the server closing idle sockets). */
function overSocket(request: Sent): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${served.baseUrl}${request.path}`, { method: request.method, headers: request.headers, agent: false }, (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
        // An event stream does not end: its first frame is its answer, and the client leaves.
        if (response.headers["content-type"]?.startsWith("text/event-stream")) response.destroy();
      });
      response.on("close", () => response.emit("end"));
      response.on("end", () => {
        let body: unknown = text;
        try {
          body = text === "" ? undefined : JSON.parse(text);
        } catch {
          // Not JSON (the docs page, metrics): the envelope check reports it where an error was due.
        }
        resolve({ status: response.statusCode ?? 0, body, headers: new Headers() });
      });
    });
    req.on("error", reject);
    req.end(request.body);
  });
}

/** Sends the requests IN_FLIGHT at a time; returns a line for each answer that is not as expected. */
async function run(requests: Sent[]): Promise<string[]> {
  const problems: string[] = [];
  for (let i = 0; i < requests.length; i += IN_FLIGHT) {
    await Promise.all(
      requests.slice(i, i + IN_FLIGHT).map(async (request) => {
        sent++;
        const viaSocket = random() < SOCKET_SHARE && socketable(request);
        const res = viaSocket
          ? await overSocket(request)
          : await t.http.call(request.method, request.path, { headers: request.headers, ...(request.body === undefined ? {} : { rawBody: request.body }) });
        const problem = envelopeProblem(res, request.statuses);
        if (problem) problems.push(`${describeRequest(request, viaSocket)} → ${problem}: ${JSON.stringify(res.body)?.slice(0, 300)}`);
      }),
    );
  }
  return problems;
}

function requestsFor(route: RouteDef, input: Input, chosen: Credential[]): Sent[] {
  return chosen.flatMap((credential) => {
    const statuses = expected(route, credential, input);
    if (!statuses) return [];
    const contentType = input.contentType ?? (input.body === undefined ? undefined : "application/json");
    return [{
      label: input.label,
      method: route.method.toUpperCase(),
      path: input.query === undefined ? input.path : `${input.path}?${input.query}`,
      headers: { ...credential.headers, ...(contentType ? { "content-type": contentType } : {}) },
      ...(input.body === undefined ? {} : { body: input.body }),
      statuses,
      credential: credential.name,
    }];
  });
}

/** The credential that gets a route past authentication (none for the routes that take none). */
function rightCredential(route: RouteDef): Credential {
  if (route.auth === "api_key") return credentials.find((c) => c.operator === "admin")!;
  if (route.auth === "host_token") return credentials.find((c) => c.host === "self")!;
  return credentials[0]!;
}

/** Every credential on the valid request; on each bad input the right credential, another team's key and one drawn at random. */
function fuzzRequests(route: RouteDef): Sent[] {
  const base: Input = { label: "valid", path: pathOf(fx, route), ...(route.body ? { body: JSON.stringify(validBody(fx, route)) } : {}) };
  const inputs = [
    ...pathInputs(route),
    ...(route.method === "get" ? queryInputs(route) : []),
    ...unknownParameterInputs(route),
    ...(route.body ? bodyInputs(route) : []),
    ...(route.auth === "body_secret" ? wrongSecretInputs(route) : []),
  ];
  const teamKeys = credentials.filter((c) => c.operator === "team");
  return [
    ...requestsFor(route, base, credentials),
    ...inputs.flatMap((input) => requestsFor(route, input, [rightCredential(route), pick(teamKeys), pick(credentials)])),
  ];
}

// ---- the run ----------------------------------------------------------------------------------

beforeAll(async () => {
  // The default address policy, so every refused form of an agent's address is refused here (no loopback allowance).
  t = await startTestApp({ config: { probeAllowCidrs: [] } });
  await t.runtime.deps.events.start();
  fx = await buildInputFixture(t);
  credentials = await buildCredentials();
  served = await listen(t);
  before = await databaseSnapshot(t);
});
afterAll(async () => {
  await served.close();
  await t.close();
});

describe(`fuzz (seed ${SEED}; replay with MUSTER_FUZZ_SEED)`, () => {
  it.each(named(ALL_ROUTES))("%s: every answer is the expected status in the envelope, never a 5xx", async (_, route) => {
    const requests = fuzzRequests(route);
    // Every credential on the valid request (never the admin's write), and more for each bad input; a POST that takes no input has only the first.
    const takesInput = Boolean(route.params || route.query || route.body || route.method === "get");
    expect(requests.length).toBeGreaterThan(takesInput ? credentials.length : credentials.length - 2);
    expect(await run(requests)).toEqual([]);
  }, 120_000);

  it("pages, the channel path without an upgrade, wrong methods and unknown paths answer every credential without a 5xx", async () => {
    const host = fx.ids.host;
    const paths: [string, string, number[]][] = [
      ["GET", "/openapi.json", [200]],
      ["GET", "/docs", [200]],
      ["GET", "/docs/assets/init.js", [200]],
      ["GET", "/docs/assets/nope.js", [404]],
      // The console may not be built where the suite runs: then every path of it is a 404.
      ["GET", "/console", [200, 404]],
      ["GET", "/console/hosts/x", [200, 404]],
      ["GET", "/console/assets/nope.js", [404]],
      ["GET", `/v1/hosts/${host}/channel`, [404]],
      ["POST", `/v1/hosts/${host}/channel`, [404]],
      ["GET", "/v1/nope", [404]],
      ["PUT", "/v1/hosts", [405]],
      ["PATCH", `/v1/hosts/${host}`, [405]],
      ["GET", `/v1/hosts/${host}/heartbeat`, [405]],
      ["POST", "/v1/ca", [405]],
      ["DELETE", "/healthz", [405]],
      ["POST", "/docs", [405]],
      ["POST", "/console/hosts", [405]],
      ["GET", `/v1/hosts/${host}/tags/a/b`, [404]],
    ];
    const requests = paths.flatMap(([method, path, statuses]) =>
      credentials.flatMap((credential) =>
        ["", `?${pick(RAW_QUERIES)}`].map((query) => ({
          label: "system", method, path: `${path}${query}`, headers: credential.headers, statuses, credential: credential.name,
        })),
      ),
    );
    expect(await run(requests)).toEqual([]);
  });

  it("refuses channel upgrades with every credential kind and junk host IDs, over a socket, in the envelope", async () => {
    const host = fx.ids.host;
    const ids: [string, number[]][] = [
      [host, []],
      [`host-${"a".repeat(ID_BODY_LENGTH)}`, [403]],
      ...PATH_JUNK.map(({ value, raw }): [string, number[]] => {
        const encoded = raw ? value : encodeURIComponent(value);
        // The upgrade handler takes the ID as sent; only a host ID's shape gets past its check.
        // A raw dot-segment is resolved by the client's URL parser before it is sent: no channel path is left (404).
        return [encoded, /^host-[a-z2-7]{26}$/.test(encoded) ? [403] : raw ? [400, 404] : [400]];
      }),
    ];
    const problems: string[] = [];
    for (const [id, byId] of ids) {
      await Promise.all(
        credentials.map(async (credential) => {
          // The host's own token on its own path would open the channel: that is channel.test.ts's business.
          if (credential.host === "self" && id === host) return;
          const statuses = byId.includes(400) || byId.includes(404) ? byId
            : credential.host === undefined ? [401]
            : credential.host === "other" || byId.includes(403) ? [403]
            : [401];
          sent++;
          const res = await upgradeRequest(served.baseUrl, `/v1/hosts/${id}/channel`, credential.headers);
          const problem = envelopeProblem(res, statuses);
          if (problem) problems.push(`[seed ${SEED}] upgrade /v1/hosts/${id.slice(0, 60)}/channel with ${credential.name} → ${problem}: ${JSON.stringify(res.body)}`);
        }),
      );
    }
    expect(problems).toEqual([]);
  });

  it(`sent at least ${MIN_REQUESTS} requests`, async ({ annotate }) => {
    await annotate(`${sent} requests, seed ${SEED}`);
    expect(sent).toBeGreaterThanOrEqual(MIN_REQUESTS);
  });

  it("left every row of every table as it was, and no prototype polluted", async () => {
    expect(await databaseSnapshot(t)).toEqual(before);
    expect(({} as Record<string, unknown>).muster_polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("muster_polluted");
  });
});
