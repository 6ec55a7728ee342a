import type { Context } from "hono";
import type { RouteDef } from "@muster/contract";
import type { TObject, TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { invalid, unsupportedMediaType } from "../errors.js";
import { unstorableJson } from "../lib/json-text.js";
import { declaresBody, header } from "./node-request.js";

export interface ValidatedInput {
  params: unknown;
  query: unknown;
  headers: unknown;
  body: unknown;
}

function describe(where: string, check: TypeCheck<TSchema>, value: unknown): string {
  const error = check.Errors(value).First();
  if (!error) return `${where} is invalid`;
  const field = error.path.replace(/^\//, "").replaceAll("/", ".");
  const schema = error.schema as { pattern?: string; description?: string };
  const hint = schema.description ? ` (${schema.description})` : "";
  return field ? `${where} field '${field}': ${error.message}${hint}` : `${where}: ${error.message}${hint}`;
}

function refuseUnstorable(value: unknown, where: string): void {
  const problem = unstorableJson(value, where);
  if (problem) throw invalid(problem);
}

const WHOLE_NUMBER = /^-?\d+$/;

/** TypeBox converts integers with parseInt ("1.5" → 1); refuse what is not a whole number first. */
function refuseNonIntegers(schema: TObject, raw: Record<string, string>): void {
  for (const [name, property] of Object.entries(schema.properties)) {
    const value = raw[name];
    if (value !== undefined && (property as { type?: string }).type === "integer" && !WHOLE_NUMBER.test(value)) {
      throw invalid(`query parameter '${name}': expected a whole number, got "${value}"`);
    }
  }
}

/** Every parameter a route does not name is refused, so a misspelt filter never silently lists everything. */
function refuseUnknownParameters(route: RouteDef, given: Record<string, string>): void {
  const known = route.query?.properties ?? {};
  const unknown = Object.keys(given).find((name) => !Object.hasOwn(known, name));
  if (unknown === undefined) return;
  const names = Object.keys(known);
  const takes = names.length > 0 ? `it takes ${names.join(", ")}` : "it takes none";
  throw invalid(`unknown query parameter '${unknown}': ${takes}`);
}

/** Array parameters are repeatable (`?type=a&type=b`): every value is read, not only the first. */
function withRepeated(c: Context, schema: TObject, given: Record<string, string>): Record<string, string | string[]> {
  const values: Record<string, string | string[]> = { ...given };
  for (const [name, property] of Object.entries(schema.properties)) {
    if ((property as { type?: string }).type === "array" && given[name] !== undefined) values[name] = c.req.queries(name) ?? [];
  }
  return values;
}

/** application/json or a +json type, with any parameters; a body without a Content-Type is read as JSON too. */
const JSON_MEDIA_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

function refuseNonJson(c: Context): void {
  const type = header(c, "content-type");
  if (type !== undefined && type.trim() !== "" && !JSON_MEDIA_TYPE.test(type.trim())) {
    throw unsupportedMediaType(`Content-Type ${JSON.stringify(type.slice(0, 100))} is not accepted: send the body as application/json`);
  }
}

/**
 * Builds the validator of one route from its contract entry, compiled once.
 * Query strings are coerced to the schema's types and defaults applied;
 * bodies must be JSON and match exactly (unknown fields are refused).
 */
export function compileValidator(route: RouteDef): (c: Context) => Promise<ValidatedInput> {
  const params = route.params && TypeCompiler.Compile(route.params);
  const query = route.query && TypeCompiler.Compile(route.query);
  const headers = route.headers && TypeCompiler.Compile(route.headers);
  const body = route.body && TypeCompiler.Compile(route.body);

  return async (c) => {
    const input: ValidatedInput = { params: {}, query: {}, headers: {}, body: undefined };
    const given = c.req.query();
    refuseUnknownParameters(route, given);
    if (params && route.params) {
      const raw = c.req.param() as Record<string, string>;
      refuseUnstorable(raw, "path parameter");
      if (!params.Check(raw)) throw invalid(describe("path parameter", params, raw));
      input.params = raw;
    }
    if (query && route.query) {
      refuseUnstorable(given, "query parameter");
      refuseNonIntegers(route.query, given);
      const raw = Value.Default(route.query, Value.Convert(route.query, withRepeated(c, route.query, given)));
      if (!query.Check(raw)) throw invalid(describe("query parameter", query, raw));
      input.query = raw;
    }
    if (headers && route.headers) {
      const raw: Record<string, string> = {};
      for (const name of Object.keys(route.headers.properties)) {
        const value = header(c, name);
        if (value !== undefined) raw[name] = value;
      }
      if (!headers.Check(raw)) throw invalid(describe("header", headers, raw));
      input.headers = raw;
    }
    if (body) {
      const declared = declaresBody(c);
      if (declared) refuseNonJson(c);
      const text = declared ? await c.req.text() : "";
      if (text.trim() === "") {
        if (!route.bodyOptional) throw invalid("request body is required: send a JSON object");
        return input;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw invalid("request body is not valid JSON");
      }
      refuseUnstorable(parsed, "body");
      if (!body.Check(parsed)) throw invalid(describe("body", body, parsed));
      input.body = parsed;
    }
    return input;
  };
}
