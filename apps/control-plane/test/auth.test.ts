import { X509Certificate, randomBytes } from "node:crypto";
import { isNull } from "drizzle-orm";
import { SignJWT, generateKeyPair, type CryptoKey, type JWTPayload } from "jose";
import { ID_PREFIX, TAG_PATTERN, idPattern, routes, type HostCredentials, type IdKind, type RouteDef } from "@muster/contract";
import type { TSchema } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signingKeys } from "../src/db/schema/index.js";
import { sealedContext } from "../src/secrets/sealer.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { listen, upgradeRequest } from "./support/channel.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";
import type { CallResult } from "./support/http.js";

/*
 * Credentials. One table of refusals runs against every operator route of the
 * contract, another against every host route; 401 and 403 are tested apart.
 */

const ALL_ROUTES = Object.values(routes) as RouteDef[];
const OPERATOR_ROUTES = ALL_ROUTES.filter((route) => route.auth === "api_key");
const HOST_ROUTES = ALL_ROUTES.filter((route) => route.auth === "host_token");
const named = (routeList: RouteDef[]) => routeList.map((route) => [route.operationId, route] as const);
const unique = () => randomBytes(4).toString("hex");

const clock = new FakeClock();
let t: TestApp;
let f: Factories;

/** What the refusal tables draw on; built once. */
interface Credentials {
  /** Keys of the admin user, shown to work before they were revoked or expired. */
  revokedKey: string;
  expiredKey: string;
  /** A live host token and its host. */
  host: HostCredentials;
  other: HostCredentials;
  /** The real signing key read from the database (and unsealed), so forged tokens differ from real ones in one claim only. */
  signingSecret: Uint8Array;
  kid: string;
  /** Asymmetric private keys, one per algorithm a token might name instead of the pinned HS256. */
  asymmetric: Record<"RS256" | "ES256" | "EdDSA", CryptoKey>;
  /** What GET /v1/ca serves, as PEM text: the certificate and its public key (an HMAC secret an attacker can read). */
  caPems: { certificate: string; publicKey: string };
  /** The earlier token of a host that registered again since. */
  reRegisteredToken: string;
  /** A live-looking token of a host deleted since. */
  deleted: HostCredentials;
  /** A command of `host`, for host routes that name one. */
  command: string;
}
let creds: Credentials;

type Headers = Record<string, string>;

function call(route: RouteDef, path: string, headers: Headers): Promise<CallResult> {
  // Body routes get an empty object: the refusal must come before any input is looked at.
  const body = route.body ? { rawBody: "{}", headers: { ...headers, "content-type": "application/json" } } : { headers };
  return t.http.call(route.method.toUpperCase(), path, body);
}

const CODES = { 401: "unauthorized", 403: "forbidden", 404: "not_found" } as const;

function expectRefused(res: CallResult, status: keyof typeof CODES, label: string): void {
  const code = CODES[status];
  expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
  expect(res.body.error.message.length).toBeGreaterThan(0);
}

async function newKey(body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const res = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: `auth-${unique()}`, ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.api_key.id, key: res.body.key };
}

const meStatus = async (key: string) => (await t.http.get("/v1/me", { key })).status;

// ---- real path parameters -------------------------------------------------------------------

const KIND_OF_PATTERN = new Map((Object.keys(ID_PREFIX) as IdKind[]).map((kind) => [idPattern(kind), kind]));

function kindOf(paramSchema: TSchema): IdKind | "tag" {
  const pattern = (paramSchema as { pattern?: string }).pattern ?? "";
  if (pattern === TAG_PATTERN) return "tag";
  const kind = KIND_OF_PATTERN.get(pattern);
  if (!kind) throw new Error(`no fixture for a path parameter matching ${pattern}`);
  return kind;
}

/**
 * Fresh resources for one route's path, so that the closing check with a valid
 * key may delete them.
 */
async function realPath(route: RouteDef): Promise<string> {
  const params = Object.entries(route.params?.properties ?? {}).map(([name, s]) => [name, kindOf(s)] as const);
  const kinds = new Set(params.map(([, kind]) => kind));
  const values = new Map<IdKind | "tag", string>();
  if (kinds.has("team") || kinds.has("user")) {
    const team = await t.http.post("/v1/teams", { key: t.adminKey, body: { name: `auth-${unique()}` } });
    expect(team.status).toBe(201);
    values.set("team", team.body.team.id);
    if (kinds.has("user")) values.set("user", (await f.member(team.body.team.id, "member")).user.id);
  }
  if (kinds.has("host") || kinds.has("tag")) {
    const { host } = await f.regularHost({ tags: ["auth-case"] });
    values.set("host", host.id);
    values.set("tag", "auth-case");
    if (kinds.has("command")) {
      const command = await t.http.post(`/v1/hosts/${host.id}/commands`, { key: t.adminKey, body: { type: "ping" } });
      expect(command.status).toBe(201);
      values.set("command", command.body.id);
    }
  }
  if (kinds.has("apiKey")) values.set("apiKey", (await newKey()).id);
  if (kinds.has("webhook")) {
    const webhook = await t.http.post("/v1/webhooks", { key: t.adminKey, body: { url: "https://hooks.example.test/auth", types: ["host.*"] } });
    expect(webhook.status).toBe(201);
    values.set("webhook", webhook.body.webhook.id);
  }
  return params.reduce((path, [name, kind]) => path.replace(`{${name}}`, encodeURIComponent(values.get(kind)!)), route.path);
}

// ---- forged host tokens ---------------------------------------------------------------------

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as JWTPayload;
const nowS = () => Math.floor(clock.now().getTime() / 1000);

/** The claims of a host's real token, made current: only what a test changes differs from a token the server would issue. */
function liveClaims(host: HostCredentials): JWTPayload {
  return { ...claimsOf(host.token), iat: nowS(), exp: nowS() + t.config.hostTokenTtlS, jti: randomBytes(16).toString("hex") };
}

function without(claims: JWTPayload, name: string): JWTPayload {
  const { [name]: _, ...rest } = claims;
  return rest;
}

function sign(claims: JWTPayload, options: { secret?: Uint8Array | CryptoKey; header?: Record<string, unknown> } = {}): Promise<string> {
  const header = { alg: "HS256", kid: creds.kid, typ: "JWT", ...options.header };
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(options.secret ?? creds.signingSecret);
}

const unsigned = (header: Record<string, unknown>, claims: JWTPayload) => `${b64(header)}.${b64(claims)}.`;

function heartbeat(hostId: string, headers: Headers): Promise<CallResult> {
  return hostCall(HOST_ROUTES.find((r) => r.operationId === "heartbeat")!, hostId, headers);
}

/** A body each host route accepts, so a refusal is the credential's doing alone. */
const HOST_BODIES: Record<string, unknown> = { heartbeat: {}, submitCommandResult: { ok: true } };

/** A host route for `hostId` (and the command of `creds.host`, for a route that names one), with a body it accepts. */
function hostCall(route: RouteDef, hostId: string, headers: Headers): Promise<CallResult> {
  const path = route.path.replace("{id}", hostId).replace("{command_id}", creds.command);
  return t.http.call(route.method.toUpperCase(), path, {
    headers: { ...headers, "content-type": "application/json" },
    rawBody: JSON.stringify(HOST_BODIES[route.operationId]),
  });
}

// ---- fixture --------------------------------------------------------------------------------

beforeAll(async () => {
  t = await startTestApp({ clock });
  await t.runtime.deps.events.start();
  f = new Factories(t);
  const revoked = await newKey();
  expect(await meStatus(revoked.key)).toBe(200);
  expect((await t.http.delete(`/v1/api-keys/${revoked.id}`, { key: t.adminKey })).status).toBe(204);

  const expiring = await newKey({ expires_in_s: 60 });
  expect(await meStatus(expiring.key)).toBe(200);
  clock.advance(61_000);

  const [key] = await t.stores.database.db.select().from(signingKeys).where(isNull(signingKeys.retiresAt));
  expect(key).toBeDefined();
  const ca = await t.http.get("/v1/ca");
  expect(ca.status).toBe(200);
  const caPublicKey = new X509Certificate(ca.body.certificate).publicKey.export({ type: "spki", format: "pem" }).toString();
  const reRegistered = await f.regularHost();
  const earlier = await f.register(reRegistered.registration_token);
  const regenerated = await t.http.post(`/v1/hosts/${earlier.host.id}/token`, { key: t.adminKey });
  await f.register(regenerated.body.registration_token);
  const deleted = await f.enrolledHost();
  expect((await t.http.delete(`/v1/hosts/${deleted.host.id}`, { key: t.adminKey })).status).toBe(204);
  creds = {
    revokedKey: revoked.key,
    expiredKey: expiring.key,
    host: await f.enrolledHost(),
    other: await f.enrolledHost(),
    signingSecret: new Uint8Array(t.runtime.deps.sealer.open({ kekId: key!.kekId!, sealed: key!.sealedSecret! }, sealedContext.signingKey(key!.kid))),
    kid: key!.kid,
    asymmetric: {
      RS256: (await generateKeyPair("RS256")).privateKey,
      ES256: (await generateKeyPair("ES256")).privateKey,
      EdDSA: (await generateKeyPair("EdDSA")).privateKey,
    },
    caPems: { certificate: ca.body.certificate, publicKey: caPublicKey },
    reRegisteredToken: earlier.token,
    deleted,
    command: "",
  };
  const command = await t.http.post(`/v1/hosts/${creds.host.host.id}/commands`, { key: t.adminKey, body: { type: "ping" } });
  expect(command.status).toBe(201);
  creds.command = command.body.id;
});
afterAll(() => t.close());

// ---- operator routes ------------------------------------------------------------------------

/** Every way an operator request can carry no valid API key. All are 401 unauthorized. */
const OPERATOR_REFUSALS: { name: string; headers: () => Headers }[] = [
  { name: "no Authorization header", headers: () => ({}) },
  { name: "a Basic credential", headers: () => ({ authorization: "Basic xyz" }) },
  { name: "the admin key under the Basic scheme", headers: () => ({ authorization: `Basic ${t.adminKey}` }) },
  { name: "the admin key without a scheme", headers: () => ({ authorization: t.adminKey }) },
  { name: "Bearer and nothing else", headers: () => ({ authorization: "Bearer " }) },
  { name: "Bearer with random garbage", headers: () => ({ authorization: `Bearer ${randomBytes(24).toString("hex")}` }) },
  { name: "Bearer with characters no key has", headers: () => ({ authorization: "Bearer ';select 1;--" }) },
  { name: "Bearer with a 10 KB value", headers: () => ({ authorization: `Bearer ${"k".repeat(10_000)}` }) },
  { name: "the admin key with one character more", headers: () => ({ authorization: `Bearer ${t.adminKey}x` }) },
  { name: "a revoked key", headers: () => ({ authorization: `Bearer ${creds.revokedKey}` }) },
  { name: "an expired key", headers: () => ({ authorization: `Bearer ${creds.expiredKey}` }) },
  { name: "a valid host token as Bearer", headers: () => ({ authorization: `Bearer ${creds.host.token}` }) },
  { name: "a valid host token only in X-Host-Token", headers: () => ({ "x-host-token": creds.host.token }) },
  {
    name: "a valid host token in both headers",
    headers: () => ({ authorization: `Bearer ${creds.host.token}`, "x-host-token": creds.host.token }),
  },
  { name: "the admin key only in X-Host-Token", headers: () => ({ "x-host-token": t.adminKey }) },
];

describe("operator routes refuse anything but a live API key", () => {
  it("covers every operator route of the contract", () => {
    expect(OPERATOR_ROUTES.length).toBeGreaterThan(10);
    for (const route of ALL_ROUTES) expect(["api_key", "host_token", "body_secret", "none"]).toContain(route.auth);
  });

  describe.each(named(OPERATOR_ROUTES))("%s", (_, route) => {
    let path: string;
    beforeAll(async () => {
      path = await realPath(route);
    });

    it.each(OPERATOR_REFUSALS)("refuses $name with 401", async ({ name, headers }) => {
      expectRefused(await call(route, path, headers()), 401, name);
    });

    it("lets the admin key past authentication on the same path (so each refusal was the credential's doing)", async () => {
      const res = await call(route, path, { authorization: `Bearer ${t.adminKey}` });
      // Body routes were sent an empty object, which no body schema of the contract accepts.
      const expected = route.body && !route.bodyOptional ? 400 : route.status;
      expect(res.status, JSON.stringify(res.body)).toBe(expected);
    });
  });
});

// ---- host routes ----------------------------------------------------------------------------

interface HostRefusal {
  name: string;
  status: 401 | 403 | 404;
  /** The headers, and the host whose path they are sent to (the token's host unless told). */
  request: () => Promise<{ headers: Headers; hostId?: string }>;
}

const withToken = async (token: string | Promise<string>, hostId?: string) => ({
  headers: { "x-host-token": await token },
  ...(hostId ? { hostId } : {}),
});
const live = () => liveClaims(creds.host);

const HOST_REFUSALS: HostRefusal[] = [
  // operator keys are never host credentials
  { name: "an operator key as Bearer without X-Host-Token", status: 401, request: async () => ({ headers: { authorization: `Bearer ${t.adminKey}` } }) },
  { name: "an operator key in X-Host-Token", status: 401, request: () => withToken(t.adminKey) },
  {
    name: "an operator key in both headers",
    status: 401,
    request: async () => ({ headers: { authorization: `Bearer ${t.adminKey}`, "x-host-token": t.adminKey } }),
  },
  { name: "no credential at all", status: 401, request: async () => ({ headers: {} }) },
  { name: "the host's own token as Bearer instead", status: 401, request: async () => ({ headers: { authorization: `Bearer ${creds.host.token}` } }) },
  { name: "garbage", status: 401, request: () => withToken("x") },
  { name: "three empty segments", status: 401, request: () => withToken("..") },
  { name: "three junk segments", status: 401, request: () => withToken("a.b.c") },
  // signatures and algorithms
  { name: 'alg "none" with no signature', status: 401, request: () => withToken(unsigned({ alg: "none", typ: "JWT" }, live())) },
  { name: 'alg "none" naming the real kid', status: 401, request: () => withToken(unsigned({ alg: "none", kid: creds.kid, typ: "JWT" }, live())) },
  {
    name: "the real token with its payload changed to another host",
    status: 401,
    request: async () => {
      const [header, , signature] = creds.host.token.split(".");
      const payload = b64({ ...claimsOf(creds.host.token), sub: creds.other.host.id, host_id: creds.other.host.id });
      return withToken(`${header}.${payload}.${signature}`, creds.other.host.id);
    },
  },
  {
    name: "the real token with its expiry pushed out",
    status: 401,
    request: async () => {
      const [header, , signature] = creds.host.token.split(".");
      return withToken(`${header}.${b64({ ...claimsOf(creds.host.token), exp: nowS() + 10 * 365 * 86400 })}.${signature}`);
    },
  },
  { name: "a token signed with another HS256 secret under the real kid", status: 401, request: () => withToken(sign(live(), { secret: randomBytes(32) })) },
  { name: "the real key under HS512 (the algorithm is pinned)", status: 401, request: () => withToken(sign(live(), { header: { alg: "HS512" } })) },
  // asymmetric tokens and HMAC keyed with public material: the algorithm is pinned, whatever key or alg the token names
  ...(["RS256", "ES256", "EdDSA"] as const).map((alg): HostRefusal => ({
    name: `a token signed ${alg} with a key of its own`,
    status: 401,
    request: () => withToken(sign(live(), { secret: creds.asymmetric[alg], header: { alg } })),
  })),
  ...(["certificate", "publicKey"] as const).map((pem): HostRefusal => ({
    name: `an HS256 token keyed with the CA's ${pem} PEM from GET /v1/ca`,
    status: 401,
    request: () => withToken(sign(live(), { secret: new TextEncoder().encode(creds.caPems[pem]) })),
  })),
  { name: "an unknown kid", status: 401, request: () => withToken(sign(live(), { header: { kid: "k9" } })) },
  { name: "no kid", status: 401, request: () => withToken(sign(live(), { header: { kid: undefined } })) },
  // claims, each wrong alone, signed with the real key
  { name: 'typ "user"', status: 401, request: () => withToken(sign({ ...live(), typ: "user" })) },
  { name: "another audience", status: 401, request: () => withToken(sign({ ...live(), aud: "someone-else" })) },
  { name: "another issuer", status: 401, request: () => withToken(sign({ ...live(), iss: "evil" })) },
  { name: "no exp", status: 401, request: () => withToken(sign(without(live(), "exp"))) },
  { name: "no jti", status: 401, request: () => withToken(sign(without(live(), "jti"))) },
  { name: "no iat", status: 401, request: () => withToken(sign(without(live(), "iat"))) },
  { name: "no sub", status: 401, request: () => withToken(sign(without(live(), "sub"))) },
  { name: "no typ", status: 401, request: () => withToken(sign(without(live(), "typ"))) },
  { name: "host_id differing from sub", status: 401, request: () => withToken(sign({ ...live(), host_id: creds.other.host.id })) },
  { name: "a credential family the host no longer has", status: 401, request: () => withToken(sign({ ...live(), fam: `fam-${unique()}` })) },
  { name: "exp a second beyond the leeway", status: 401, request: () => withToken(sign({ ...live(), exp: nowS() - t.config.clockLeewayS - 1 })) },
  { name: "exp an hour ago", status: 401, request: () => withToken(sign({ ...live(), exp: nowS() - 3600, iat: nowS() - 7200 })) },
  // the right signature and claims, for credentials the host no longer has
  {
    name: "the earlier token of a host that registered again",
    status: 401,
    request: () => withToken(creds.reRegisteredToken, claimsOf(creds.reRegisteredToken).sub),
  },
  // SPEC §5: a deleted host's heartbeat is 404, so its agent wipes the credentials
  { name: "the token of a host deleted since", status: 404, request: () => withToken(creds.deleted.token, creds.deleted.host.id) },
  { name: "the token of a host deleted since, on another host's path", status: 403, request: () => withToken(creds.deleted.token) },
  { name: "nbf an hour ahead", status: 401, request: () => withToken(sign({ ...live(), nbf: nowS() + 3600 })) },
  // authenticated, but not this host
  { name: "a valid token of another host", status: 403, request: async () => withToken(sign(live()), creds.other.host.id) },
];

describe("host routes refuse anything but the host's own live token", () => {
  it("covers every host route of the contract", () => {
    expect(HOST_ROUTES.map((route) => route.operationId).sort()).toEqual(Object.keys(HOST_BODIES).sort());
  });

  describe.each(named(HOST_ROUTES))("%s", (_, route) => {
    it("accepts a token forged with the real key and the real claims (so each refusal below is its one change's doing)", async () => {
      expect((await hostCall(route, creds.host.host.id, { "x-host-token": await sign(live()) })).status).toBe(204);
      expect((await hostCall(route, creds.host.host.id, { "x-host-token": creds.host.token })).status).toBe(204);
    });

    it.each(HOST_REFUSALS)("refuses $name with $status", async ({ name, status, request }) => {
      const { headers, hostId } = await request();
      expectRefused(await hostCall(route, hostId ?? creds.host.host.id, headers), status, name);
    });
  });

  describe("on the channel upgrade, authenticated exactly as the heartbeat", () => {
    let served: Awaited<ReturnType<typeof listen>>;
    beforeAll(async () => {
      served = await listen(t);
    });
    afterAll(() => served.close());

    it("upgrades for the host's own live token (so each refusal below is its one change's doing)", async () => {
      const res = await upgradeRequest(served.baseUrl, `/v1/hosts/${creds.host.host.id}/channel`, { "x-host-token": creds.host.token });
      expect(res.status).toBe(101);
    });

    it.each(HOST_REFUSALS)("refuses $name with $status", async ({ name, status, request }) => {
      const { headers, hostId } = await request();
      expectRefused(await upgradeRequest(served.baseUrl, `/v1/hosts/${hostId ?? creds.host.host.id}/channel`, headers), status, name);
    });
  });

  it("answers a bad token on another host's path with 401, not 403: authentication comes first", async () => {
    const forged = await sign(live(), { secret: randomBytes(32) });
    expectRefused(await heartbeat(creds.other.host.id, { "x-host-token": forged }), 401, "forged, other host");
    expectRefused(await heartbeat(creds.other.host.id, { "x-host-token": creds.host.token }), 403, "real, other host");
  });

  it("refuses every operator key, whoever holds it, on the heartbeat", async () => {
    const fresh = await newKey();
    for (const key of [t.adminKey, fresh.key]) {
      expectRefused(await heartbeat(creds.host.host.id, { authorization: `Bearer ${key}` }), 401, "operator key as Bearer");
      expectRefused(await heartbeat(creds.host.host.id, { "x-host-token": key }), 401, "operator key as host token");
    }
    expect(await meStatus(fresh.key)).toBe(200);
  });

  it("refuses a host token once the clock passes its expiry plus the configured leeway, and not a second before", async () => {
    const host = await f.enrolledHost();
    expect((await f.heartbeat(host)).status).toBe(204);
    expect(t.config.clockLeewayS).toBeGreaterThan(0);
    clock.advance((t.config.hostTokenTtlS + t.config.clockLeewayS) * 1000 - 1000);
    expect((await f.heartbeat(host)).status).toBe(204);
    clock.advance(2000);
    expectRefused(await f.heartbeat(host), 401, "expired host token");
  });
});
