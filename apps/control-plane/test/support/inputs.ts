import { randomBytes } from "node:crypto";
import { getTableName, is } from "drizzle-orm";
import { PgTable } from "drizzle-orm/pg-core";
import type { TSchema } from "@sinclair/typebox";
import { ID_PREFIX, TAG_PATTERN, idPattern, type HostCredentials, type IdKind, type RouteDef } from "@muster/contract";
import { expect } from "vitest";
import * as schema from "../../src/db/schema/index.js";
import type { TestApp } from "./app.js";
import { Factories, machineSpecs, type TeamFixture } from "./factories.js";
import { HOSTILE_KEYS, HOSTILE_VALUES, Raw, boundaryValues, entriesToJson, schemaAccepts, seeded, shuffled, toJson, type Entries, type Json } from "./fuzz.js";

/*
 * Real resources and valid requests for every route of the contract, which the
 * input suites mutate; and a snapshot of the database to show that refused
 * requests changed nothing.
 */

const unique = () => randomBytes(4).toString("hex");

export interface InputFixture {
  /** Real IDs for path parameters; the user belongs to no team. */
  ids: Record<Exclude<IdKind, "hostRegistrationToken" | "hostRefreshToken" | "audit" | "webhookDelivery" | "signingKey" | "certificateAuthority" | "secretKey">, string>;
  /** A member of the fixture's team. */
  memberId: string;
  tag: string;
  /** Enrolled: its id fills `host` path parameters and its token authenticates host routes. */
  host: HostCredentials;
  /** Unused registration token of another host. */
  pendingToken: string;
  /** Live refresh token of a third host. */
  refreshToken: string;
  /** A team that owns none of the resources above: its keys are another team's. */
  outsiders: TeamFixture;
}

export async function buildInputFixture(t: TestApp): Promise<InputFixture> {
  const f = new Factories(t);
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
  const webhook = await t.http.post("/v1/webhooks", { key: t.adminKey, body: { url: "https://hooks.example.test/muster", types: ["host.*"] } });
  expect(webhook.status).toBe(201);
  return {
    memberId: member.user.id,
    ids: { user: user.id, team: team.body.team.id, apiKey: key.body.api_key.id, host: host.host.id, command: command.body.id, webhook: webhook.body.webhook.id },
    tag,
    host,
    pendingToken: pending.registration_token,
    refreshToken: refreshable.refresh_token,
    outsiders: await f.team(),
  };
}

// ---- agent addresses -------------------------------------------------------------------------

/**
 * Addresses a host may not report under the default policy, each with the
 * range the refusal names (null: refused for its port or its form): loopback
 * in every spelling the resolver takes, link-local (cloud metadata),
 * unspecified, multicast, broadcast, IPv4-mapped and NAT64 IPv6 forms of
 * these, and ports out of range.
 */
export const REFUSED_ADDRESSES: ReadonlyArray<readonly [string, string | null]> = [
  ["127.0.0.1:7070", "127.0.0.0/8"],
  ["127.1:7070", "127.0.0.0/8"],
  ["2130706433:7070", "127.0.0.0/8"],
  ["0x7f.1:7070", "127.0.0.0/8"],
  ["0177.0.0.1:7070", "127.0.0.0/8"],
  ["localhost:7070", "127.0.0.0/8"],
  ["db.localhost:7070", "127.0.0.0/8"],
  ["[::1]:7070", "::1/128"],
  ["169.254.169.254:80", "169.254.0.0/16"],
  ["[fe80::1]:7070", "fe80::/10"],
  ["0.0.0.0:7070", "0.0.0.0/8"],
  ["0:7070", "0.0.0.0/8"],
  ["[::]:7070", "::/128"],
  ["224.0.0.1:7070", "224.0.0.0/4"],
  ["239.255.255.250:1900", "224.0.0.0/4"],
  ["[ff02::1]:7070", "ff00::/8"],
  ["255.255.255.255:7070", "255.255.255.255/32"],
  ["[::ffff:127.0.0.1]:7070", "127.0.0.0/8"],
  ["[::ffff:7f00:1]:7070", "127.0.0.0/8"],
  ["[::ffff:169.254.169.254]:80", "169.254.0.0/16"],
  ["[64:ff9b::a9fe:a9fe]:80", "169.254.0.0/16"],
  ["[::7f00:1]:7070", "::/96"],
  ["10.0.0.1:0", null],
  ["10.0.0.1:65536", null],
  ["10.0.0.1:99999", null],
  ["[not-v6]:7070", null],
  ["under_score.example:7070", null],
];

// ---- paths ------------------------------------------------------------------------------------

const KIND_OF_PATTERN = new Map((Object.keys(ID_PREFIX) as IdKind[]).map((kind) => [idPattern(kind), kind]));
export const patternOf = (s: TSchema) => (s as { pattern?: string }).pattern;
export const isTag = (s: TSchema) => patternOf(s) === TAG_PATTERN;

function realParam(fx: InputFixture, paramSchema: TSchema): string {
  if (isTag(paramSchema)) return fx.tag;
  const kind = KIND_OF_PATTERN.get(patternOf(paramSchema) ?? "");
  const value = kind && fx.ids[kind as keyof InputFixture["ids"]];
  if (!value) throw new Error(`no real value for a path parameter matching ${patternOf(paramSchema)}: add one to the fixture`);
  return value;
}

/** The route's path with real IDs, except the parameters given (already URL-encoded). */
export function pathOf(fx: InputFixture, route: RouteDef, encodedOverrides: Record<string, string> = {}): string {
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) =>
    encodedOverrides[name] ?? encodeURIComponent(realParam(fx, route.params!.properties[name]!)),
  );
}

// ---- bodies -----------------------------------------------------------------------------------

/** A body each route accepts; everything else mutates one of these. */
const VALID_BODIES: Record<string, (fx: InputFixture) => Record<string, unknown>> = {
  createUser: () => ({ email: `u-${unique()}@example.test`, name: "Input test", is_admin: false }),
  createTeam: () => ({ name: `team-${unique()}` }),
  addMember: (fx) => ({ user_id: fx.ids.user, role: "member" }),
  createApiKey: (fx) => ({ name: `key-${unique()}`, user_id: fx.memberId, team_id: fx.ids.team, expires_in_s: 3600 }),
  createHost: () => ({ type: "regular", provider: "aws", availability_zone: "eu-west-1a", tags: ["gpu", "zone-a"] }),
  addHostTag: () => ({ tag: "ssd" }),
  registerHost: (fx) => ({ token: fx.pendingToken, ...machineSpecs }),
  refreshHostCredentials: (fx) => ({ refresh_token: fx.refreshToken }),
  heartbeat: () => ({ cpu_percent: 12.5, memory_used_mb: 1024, disk_used_gb: 10, load_1m: 0.5, uptime_s: 100 }),
  sendCommand: () => ({ type: "deploy", payload: { image: "app:2", replicas: 3 }, timeout_s: 60 }),
  rotateCa: () => ({ action: "start" }),
  submitCommandResult: () => ({ ok: false, error: "disk full" }),
  createWebhook: (fx) => ({ url: "https://hooks.example.test/muster", types: ["host.online", "command.*"], secret: "a-long-enough-secret-for-signing", team_id: fx.ids.team }),
};

export const hasValidBody = (route: RouteDef) => route.operationId in VALID_BODIES;

export function validBody(fx: InputFixture, route: RouteDef): Record<string, unknown> {
  const make = VALID_BODIES[route.operationId];
  if (!make) throw new Error(`add a valid example body for ${route.operationId} to VALID_BODIES`);
  return make(fx);
}

export const bodyProperties = (route: RouteDef) =>
  Object.entries((route.body as { properties?: Record<string, TSchema> }).properties ?? {});
export const requiredFields = (route: RouteDef) => ((route.body as { required?: string[] }).required ?? []);

/**
 * Raw JSON bodies the contract refuses, built from the route's valid example:
 * whole-body, missing-field, per-field (hostile values and the field schema's
 * own boundaries) and hostile-key variants, then random mixes; a seeded
 * shuffle picks `count`.
 */
export function hostileBodies(fx: InputFixture, route: RouteDef, seed: number, count: number): string[] {
  const random = seeded(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const valid = Object.entries(validBody(fx, route)) as Entries;
  const properties = new Map(bodyProperties(route));
  const fields = [...new Set([...valid.map(([k]) => k), ...properties.keys()])];
  const valuesFor = new Map(fields.map((field) => [field, [...HOSTILE_VALUES, ...boundaryValues(properties.get(field)!)]]));
  const strings = HOSTILE_VALUES.filter((value): value is string => typeof value === "string");
  const withField = (entries: Entries, key: string, value: Json): Entries => [...entries.filter(([k]) => k !== key), [key, value]];

  const refused = new Set<string>();
  // Refused by the contract, or well-formed but unstorable (NUL anywhere), or an agent address the control plane will not call.
  const offer = (entries: Entries | Raw) => {
    const raw = entries instanceof Raw ? entries.json : entriesToJson(entries);
    if (!schemaAccepts(route.body!, raw) || containsNul(raw) || refusesAddress(route, raw)) refused.add(raw);
  };
  // Sent every run, whatever the seed picks below: the schema accepts these, only the control plane's own checks refuse them.
  const always = new Set<string>();
  for (const [field, value] of valid) for (const variant of withNul(value)) always.add(entriesToJson(withField(valid, field, variant)));
  if (route.operationId === "registerHost") for (const [address] of REFUSED_ADDRESSES) always.add(entriesToJson(withField(valid, "address", address)));
  for (const value of HOSTILE_VALUES) offer(new Raw(toJson(value)));
  for (const field of requiredFields(route)) offer(valid.filter(([key]) => key !== field));
  for (const field of fields) for (const value of valuesFor.get(field)!) offer(withField(valid, field, value));
  for (const [key, value] of HOSTILE_KEYS) offer([...valid, [key, value]]);
  // Random mixes until there are plenty to choose from; bounded either way.
  for (let attempt = 0; attempt < 5000 && refused.size < count * 2; attempt++) {
    let entries = valid;
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
      const field = pick(fields);
      const current = entries.find(([k]) => k === field)?.[1];
      const value = random() < 0.3 && typeof current === "string" ? current + pick(strings) : pick(valuesFor.get(field)!);
      entries = withField(entries, field, value);
    }
    if (random() < 0.4) entries = [...entries, [pick(HOSTILE_KEYS)[0], pick(HOSTILE_VALUES)]];
    if (random() < 0.2) entries = entries.filter(() => random() < 0.5);
    offer(entries);
  }
  return [...always, ...shuffled([...refused].filter((raw) => !always.has(raw)), random).slice(0, count)];
}

/** The value with a NUL character put in (strings), or in a value and a key inside (objects). */
function withNul(value: Json): Json[] {
  if (typeof value === "string") return [`${value}\u0000`, `\u0000${value}`, value.replace(/^(.)/, "$1\u0000")];
  if (value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Raw)) {
    return [{ ...value, note: "a\u0000b" }, { ...value, "k\u0000": 1 }, { ...value, deep: { list: ["x", "\u0000"] } }];
  }
  if (Array.isArray(value)) return [[...value, "\u0000"]];
  return [];
}

const REFUSED = new Set(REFUSED_ADDRESSES.map(([address]) => address));

/** Whether the JSON text holds a NUL character in any string or key (the escape itself, not the text "\\u0000"). */
function containsNul(raw: string): boolean {
  const holds = (value: unknown): boolean =>
    typeof value === "string"
      ? value.includes("\u0000")
      : value !== null && typeof value === "object" && Object.entries(value).some(([key, item]) => key.includes("\u0000") || holds(item));
  try {
    return holds(JSON.parse(raw));
  } catch {
    return false;
  }
}

function refusesAddress(route: RouteDef, raw: string): boolean {
  if (route.operationId !== "registerHost") return false;
  try {
    return REFUSED.has((JSON.parse(raw) as { address?: unknown }).address as string);
  } catch {
    return false;
  }
}

// ---- the database -----------------------------------------------------------------------------

const TABLES: PgTable[] = (Object.values(schema) as unknown[]).filter((value): value is PgTable => is(value, PgTable));

/**
 * Every row of every table, keyed by table, rows in a stable order. Only
 * `api_keys.last_used_at` is left out: authenticating with a key is a use of
 * it even when the request is then refused.
 */
export async function databaseSnapshot(t: TestApp): Promise<Record<string, string[]>> {
  const snapshot: Record<string, string[]> = {};
  for (const table of TABLES) {
    const rows = (await t.stores.database.db.select().from(table)) as Record<string, unknown>[];
    const kept = rows.map((row) => (table === (schema.apiKeys as PgTable) ? { ...row, lastUsedAt: undefined } : row));
    snapshot[getTableName(table)] = kept.map((row) => JSON.stringify(row, (_, value: unknown) => (typeof value === "bigint" ? String(value) : value))).sort();
  }
  return snapshot;
}
