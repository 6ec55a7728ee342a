import { Type, type Static } from "@sinclair/typebox";
import { Body, Nullable, PageQuery, Timestamp } from "./common.js";
import { EVENT_TYPES, EventId, EventTypeFilterSchema } from "./events.js";
import { IdSchema } from "./ids.js";

/** The header each webhook delivery is signed in: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = "muster-signature";

/** Given secrets are at least this long; without one, the control plane makes one of 256 random bits. */
export const WEBHOOK_SECRET_MIN_LENGTH = 24;

export const CreateWebhookBody = Body({
  url: Type.String({
    minLength: 8,
    maxLength: 2048,
    pattern: "^https?://[^\\s\\u0000-\\u001f\\u007f]+$",
    description: "http(s) URL the events are POSTed to; loopback, link-local and metadata addresses are refused (MUSTER_PROBE_ALLOW_CIDRS)",
  }),
  types: Type.Array(EventTypeFilterSchema, { minItems: 1, maxItems: EVENT_TYPES.length + 2, uniqueItems: true }),
  secret: Type.Optional(
    Type.String({
      minLength: WEBHOOK_SECRET_MIN_LENGTH,
      maxLength: 256,
      pattern: "^[\\x21-\\x7e]+$",
      description: "the signing secret (printable ASCII, no spaces); left out, one is generated and returned once",
    }),
  ),
  team_id: Type.Optional(IdSchema("team")),
});
export type CreateWebhookBody = Static<typeof CreateWebhookBody>;

export const Webhook = Type.Object(
  {
    id: IdSchema("webhook"),
    url: Type.String(),
    types: Type.Array(Type.String()),
    team_id: Nullable(IdSchema("team")),
    secret_start: Type.String({ description: "the secret's first characters, for telling secrets apart; the secret itself is shown only at creation" }),
    created_by: Type.String({ description: "ID of the user who created the webhook" }),
    created_at: Timestamp,
  },
  { $id: "Webhook", description: "team_id null: an admin's webhook, for every team's events" },
);
export type Webhook = Static<typeof Webhook>;

export const CreateWebhookResponse = Type.Object({
  webhook: Webhook,
  secret: Type.String({ description: "the signing secret; shown in this response only" }),
});
export type CreateWebhookResponse = Static<typeof CreateWebhookResponse>;

export const WebhookParams = Type.Object({ id: IdSchema("webhook") });

export const WebhookAttempt = Type.Object({
  at: Timestamp,
  status_code: Nullable(Type.Integer({ description: "the receiver's HTTP status; null when it did not answer" })),
  error: Nullable(Type.String()),
  duration_ms: Type.Integer(),
});
export type WebhookAttempt = Static<typeof WebhookAttempt>;

export const WebhookDeliveryStatus = Type.Union([Type.Literal("pending"), Type.Literal("succeeded"), Type.Literal("failed")]);

export const WebhookDelivery = Type.Object(
  {
    id: IdSchema("webhookDelivery"),
    webhook_id: IdSchema("webhook"),
    event_id: EventId,
    event_type: Type.String(),
    host_id: IdSchema("host"),
    status: WebhookDeliveryStatus,
    attempts: Type.Array(WebhookAttempt, { description: "every attempt, oldest first" }),
    next_attempt_at: Nullable(Timestamp),
    created_at: Timestamp,
    completed_at: Nullable(Timestamp),
  },
  { $id: "WebhookDelivery", description: "failed: retried for 24 hours without a 2xx answer" },
);
export type WebhookDelivery = Static<typeof WebhookDelivery>;

export const ListWebhookDeliveriesQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(WebhookDeliveryStatus) },
  { additionalProperties: false },
);
export type ListWebhookDeliveriesQuery = Static<typeof ListWebhookDeliveriesQuery>;
