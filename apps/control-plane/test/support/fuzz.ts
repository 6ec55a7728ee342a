import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { ERROR_STATUS, ID_BODY_LENGTH, ID_PREFIX, type ErrorCode, type IdKind } from "@muster/contract";
import type { CallResult } from "./http.js";

/*
 * The hostile-input generator: values, keys and schema-derived boundaries, all
 * drawn through a seeded PRNG so that a failure names the seed that finds it again.
 */

/** JSON text that JavaScript values cannot produce (Infinity, own __proto__ keys, depth). */
export class Raw {
  constructor(readonly json: string) {}
}
export type Json = unknown;
export type Entries = [string, Json][];

export function toJson(value: Json): string {
  if (value instanceof Raw) return value.json;
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") return entriesToJson(Object.entries(value));
  return JSON.stringify(value) ?? "null";
}
export const entriesToJson = (entries: Entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;

const nested = (depth: number, open: string, close: string, inner = "1") => new Raw(open.repeat(depth) + inner + close.repeat(depth));

export const HOSTILE_STRINGS: string[] = [
  "", " ", "\u0000", "nul\u0000in the middle", "\t\n\r", "\u001b[31mred", "\u202eevil", "\ud800", "\udfff lone low", "🚀".repeat(40),
  "Ω≈ç√∫ 中文 العربية", "a".repeat(5000), "'; drop table hosts;--", "\" or \"1\"=\"1", "<script>alert(1)</script>",
  "${jndi:ldap://x/a}", "{{7*7}}", "%s%s%n", "../../etc/passwd", "__proto__", "constructor", "NaN", "Infinity", "-0",
  "-1", "1e999", "0x10", "TRUE", "null", "undefined", "[object Object]", "\\u0000", "%00", "\uFEFFbom", "e\u0301",
];

export const HOSTILE_VALUES: Json[] = [
  null, true, false, 0, -0, -1, -0.5, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, Number.MIN_VALUE,
  new Raw("1e400"), new Raw("-1e400"), new Raw(`1${"0".repeat(400)}`), new Raw("1.0"), new Raw("1E2"),
  ...HOSTILE_STRINGS,
  [], [null], ["a", 1, null], {}, { nested: { deeper: { deepest: [1, { x: "y" }] } } }, { $gt: "" },
  nested(200, "[", "]"), nested(5000, "[", "]"), nested(200, '{"a":', "}"), nested(1000, '{"a":', "}"),
  new Raw('{"__proto__":{"muster_polluted":true}}'), new Raw('{"constructor":{"prototype":{"muster_polluted":true}}}'),
];

export const HOSTILE_KEYS: [string, Json][] = [
  ["__proto__", new Raw('{"muster_polluted":true,"is_admin":true}')],
  ["constructor", new Raw('{"prototype":{"muster_polluted":true}}')],
  ["prototype", { muster_polluted: true }],
  ["toString", "x"],
  ["hasOwnProperty", 1],
  ["", "empty key"],
  ["\u0000", "nul key"],
  ["\ud800", "lone surrogate key"],
  ["$where", "1 == 1"],
  ["a".repeat(1000), 1],
  ["🚀", "rocket"],
  ["is_admin", true],
];

/** Path parameter values no route expects; `raw` ones are sent as they are, the others URL-encoded. */
export const PATH_JUNK: { value: string; raw?: boolean }[] = [
  { value: "x" },
  { value: "host-123" },
  { value: `host-${"a".repeat(10_000)}` },
  { value: `HOST-${"A".repeat(ID_BODY_LENGTH)}` },
  { value: "host-\u0000" },
  { value: "hôst-🚀" },
  { value: "../../etc/passwd" },
  { value: '{"$ne":null}' },
  ...HOSTILE_STRINGS.filter((value) => value !== "" && value.length < 1000 && !/[\ud800-\udfff]/.test(value)).map((value) => ({ value })),
  ...["%E0%A4%A", "%2e%2e", "%2F", "%00", "%ED%A0%80", "%252F", "a%2Fb", "%C0%AF", "%", "%%"].map((value) => ({ value, raw: true })),
  ...(Object.keys(ID_PREFIX) as IdKind[]).map((kind) => ({ value: `${ID_PREFIX[kind]}-${"a".repeat(ID_BODY_LENGTH)}` })),
];

/** Text that is not one JSON value, or not JSON at all. (No byte-order marks: the platform's UTF-8 decoder drops them, as RFC 8259 allows.) */
export const MALFORMED_JSON = [
  '{"a":', "{", "{'single': 1}", '{"a":1}trailing', "nul", "undefined", "NaN", '{"a":1,}', "\u0000", "[1,2",
  '{"a":1}{"b":2}', "{a:1}", '{"a":"\\x41"}', '{"a":"\\ud800"}', '{"a":01}', '{"a":.5}', '{"a":+1}', "\u00ff\u00fe",
];

/** A small seeded generator (mulberry32), so a failing variant can be found again. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(list: readonly T[], random: () => number): T[] {
  const copy = [...list];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

interface SchemaFacts {
  type?: string;
  const?: unknown;
  anyOf?: TSchema[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
  items?: TSchema;
  maxItems?: number;
  uniqueItems?: boolean;
  examples?: unknown[];
}

/**
 * Values at and just past the edges a schema draws: lengths and numbers ±1,
 * wrong-case literals, pattern breakers, oversized arrays. Some are valid (the
 * edges themselves); callers keep the ones the contract refuses.
 */
export function boundaryValues(schema: TSchema): Json[] {
  const s = schema as SchemaFacts;
  const values: Json[] = [];
  for (const member of s.anyOf ?? []) values.push(...boundaryValues(member));
  if (typeof s.const === "string") values.push(s.const.toUpperCase(), ` ${s.const}`, `${s.const}\u0000`, s.const.slice(0, -1), `${s.const}s`);
  if (s.type === "string") {
    const sample = typeof s.examples?.[0] === "string" ? s.examples[0] : "a";
    if (s.minLength !== undefined) values.push("a".repeat(Math.max(0, s.minLength - 1)), "a".repeat(s.minLength));
    if (s.maxLength !== undefined) {
      values.push("a".repeat(s.maxLength), "a".repeat(s.maxLength + 1), "é".repeat(s.maxLength + 1), "🚀".repeat(Math.ceil(s.maxLength / 2) + 1));
    }
    if (s.pattern !== undefined) {
      values.push(sample.slice(0, -1), `${sample}a`, sample.toUpperCase(), ` ${sample}`, `${sample}\n`, `${sample}/x`, "-", "A");
    }
    if (s.format !== undefined) values.push(`not-${s.format}`, "a@b", "@example.test", "2026-13-45T25:61:61Z");
  }
  if (s.type === "integer" || s.type === "number") {
    for (const edge of [s.minimum, s.maximum]) if (edge !== undefined) values.push(edge - 1, edge, edge + 1, edge + 0.5, String(edge));
    values.push(1.5, -1, 2 ** 53, new Raw("1e400"), "NaN");
  }
  if (s.type === "boolean") values.push(0, 1, "false", "yes");
  if (s.type === "array" && s.items) {
    const items = boundaryValues(s.items);
    values.push(...items.slice(0, 6).map((item) => [item]));
    const good = typeof (s.items as SchemaFacts).examples?.[0] === "string" ? (s.items as SchemaFacts).examples![0] : "a";
    if (s.maxItems !== undefined) values.push(Array.from({ length: s.maxItems + 1 }, (_, i) => `${String(good)}${i}`));
    if (s.uniqueItems) values.push([good, good]);
  }
  if (s.type === "object") values.push(nested(40, '{"a":', "}"), { [`${"k".repeat(300)}`]: 1 }, Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])));
  return values;
}

/** Whether the contract would accept this text as the schema's value. */
export function schemaAccepts(schema: TSchema, raw: string): boolean {
  try {
    return Value.Check(schema, JSON.parse(raw));
  } catch {
    return false;
  }
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
  /\bupdate\s+\S+\s+set\b/i,
  /\bdelete\s+from\b/i,
  /postgres/i,
  /pglite/i,
  /drizzle/i,
  /typebox/i,
  /node_modules/,
];

/** Why a response is not a well-formed error of one of the given statuses, or null when it is. */
export function envelopeProblem(res: CallResult, statuses: readonly number[]): string | null {
  if (!statuses.includes(res.status)) return `status ${res.status}, expected ${statuses.join(" or ")}`;
  if (res.status < 400) return null;
  const body = res.body as { error?: { code?: unknown; message?: unknown } } | undefined;
  if (typeof body !== "object" || body === null || Object.keys(body).join() !== "error") return "not an error envelope";
  const { code, message } = body.error ?? {};
  // 410 from the event stream also names the oldest event the log holds.
  const fields = res.status === 410 ? "code,message,oldest_id" : "code,message";
  if (Object.keys(body.error ?? {}).sort().join() !== fields) return `envelope has other fields than ${fields}`;
  if (code !== CODE_OF_STATUS.get(res.status)) return `code ${String(code)} does not go with status ${res.status}`;
  if (typeof message !== "string" || message.trim() === "") return "empty message";
  const leak = LEAKS.find((pattern) => pattern.test(message));
  return leak ? `message leaks internals (${leak}): ${message}` : null;
}
