/**
 * What the logs may say about an error. Errors of the stores carry what was
 * sent to them (drizzle puts a query's parameters in its message, PostgreSQL
 * quotes offending values, JSON.parse quotes its input), and parameters are
 * bodies and command payloads, which hold operators' secrets. So an error is
 * logged as its kind, its codes and its stack frames; a message only when its
 * kind never quotes data (programming errors), and for a failed query the SQL
 * text, whose values are placeholders.
 */
export function safeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error };
  const fields = error as Error & { code?: unknown; query?: unknown; routine?: unknown; severity?: unknown };
  // Some libraries' errors keep the name "Error" (drizzle's DrizzleQueryError); their class says more.
  const type = error.name === "Error" && error.constructor.name !== "Object" ? error.constructor.name : error.name;
  const safe: Record<string, unknown> = { type };
  if (typeof fields.code === "string" || typeof fields.code === "number") safe.code = fields.code;
  if (typeof fields.routine === "string") safe.routine = fields.routine;
  if (type === "TypeError" || type === "ReferenceError" || type === "RangeError") safe.message = error.message;
  if (type === "DrizzleQueryError" && typeof fields.query === "string") safe.query = fields.query;
  safe.stack = (error.stack ?? "")
    .split("\n")
    .filter((line) => line.startsWith("    at "))
    .join("\n");
  if (error.cause !== undefined && error.cause !== error) safe.cause = safeError(error.cause);
  return safe;
}

/** pino serializers: every `err` field of every log line goes through safeError. */
export const logSerializers = { err: safeError };
