import type { Context } from "hono";
import type { RouteDef } from "@muster/contract";
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { invalid } from "../errors.js";

export interface ValidatedInput {
  params: unknown;
  query: unknown;
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

/**
 * Builds the validator of one route from its contract entry, compiled once.
 * Query strings are coerced to the schema's types and defaults applied;
 * bodies must be JSON and match exactly (unknown fields are refused).
 */
export function compileValidator(route: RouteDef): (c: Context) => Promise<ValidatedInput> {
  const params = route.params && TypeCompiler.Compile(route.params);
  const query = route.query && TypeCompiler.Compile(route.query);
  const body = route.body && TypeCompiler.Compile(route.body);

  return async (c) => {
    const input: ValidatedInput = { params: {}, query: {}, body: undefined };
    if (params && route.params) {
      const raw = c.req.param() as Record<string, string>;
      if (!params.Check(raw)) throw invalid(describe("path parameter", params, raw));
      input.params = raw;
    }
    if (query && route.query) {
      const raw = Value.Default(route.query, Value.Convert(route.query, { ...c.req.query() }));
      if (!query.Check(raw)) throw invalid(describe("query parameter", query, raw));
      input.query = raw;
    }
    if (body) {
      const text = await c.req.text();
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
      if (!body.Check(parsed)) throw invalid(describe("body", body, parsed));
      input.body = parsed;
    }
    return input;
  };
}
