import { InvalidArgumentError } from "commander";
import type { TLiteral, TUnion } from "@sinclair/typebox";

/** The values of a contract enum (a union of literals), so `--status` and friends offer exactly what the API takes. */
export function literals<T extends string>(schema: TUnion<TLiteral<T>[]>): T[] {
  return schema.anyOf.map((literal) => literal.const);
}

/** `--limit 50`: a whole number of at least 1. */
export function positiveInt(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError("expected a whole number of at least 1.");
  return value;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `90s`, `15m`, `1h`, `500ms`; a bare number is seconds. Returns milliseconds. */
export function duration(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!match) throw new InvalidArgumentError("expected a duration such as 90s, 15m or 1h.");
  const ms = Number(match[1]) * UNITS_MS[match[2] ?? "s"]!;
  if (ms <= 0) throw new InvalidArgumentError("expected a duration above zero.");
  return ms;
}

/** Repeatable options (`--tag gpu --tag eu`) collect into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
