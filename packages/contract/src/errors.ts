import { Type, type Static } from "@sinclair/typebox";

/** Every error code of the API, with the HTTP status it always travels with. */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  gone: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  upgrade_required: 426,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      code: Type.Union(ERROR_CODES.map((code) => Type.Literal(code))),
      message: Type.String(),
      oldest_id: Type.Optional(
        Type.Union([Type.String(), Type.Null()], { description: "with gone (GET /v1/events): the oldest event ID the log still holds; null when it holds none" }),
      ),
    }),
  },
  { $id: "ErrorEnvelope", description: "Every error response has this shape." },
);
export type ErrorEnvelope = Static<typeof ErrorEnvelope>;
