import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { ERROR_STATUS, type ErrorCode, type ErrorEnvelope } from "@muster/contract";
import type { Logger } from "pino";
import { DomainError } from "../errors.js";
import { causes, isStoreUnavailable } from "../lib/store-errors.js";

const RETRY_AFTER_UNAVAILABLE_S = 5;

export function errorResponse(c: Context, code: ErrorCode, message: string, retryAfterS?: number, fields?: Readonly<Record<string, unknown>>): Response {
  const body: ErrorEnvelope = { error: { ...fields, code, message } };
  if (retryAfterS !== undefined) c.header("Retry-After", String(retryAfterS));
  return c.json(body, ERROR_STATUS[code]);
}

function isUniqueViolation(error: unknown): boolean {
  return causes(error).some((cause) => (cause as { code?: unknown }).code === "23505");
}

/** The single place where any thrown error becomes the envelope. Nothing internal reaches the client. */
export function handleError(error: Error, c: Context, logger: Logger): Response {
  if (error instanceof DomainError) return errorResponse(c, error.code, error.message, error.retryAfterS, error.fields);
  if (error instanceof HTTPException) {
    const status = error.status;
    if (status === 413) return errorResponse(c, "payload_too_large", "request body is larger than 64 KiB");
    if (status === 400) return errorResponse(c, "invalid_request", error.message || "malformed request");
    if (status === 401) return errorResponse(c, "unauthorized", error.message || "unauthorized");
  }
  if (isStoreUnavailable(error)) {
    logger.warn({ err: error, path: c.req.path }, "a backing store is unreachable");
    return errorResponse(c, "unavailable", "a backing store is unreachable; retry shortly", RETRY_AFTER_UNAVAILABLE_S);
  }
  if (isUniqueViolation(error)) {
    return errorResponse(c, "conflict", "the request conflicts with a concurrent change; retry it");
  }
  logger.error({ err: error, method: c.req.method, path: c.req.path, request_id: c.get("requestId") }, "unhandled error");
  return errorResponse(c, "internal", "internal error; it has been logged");
}
