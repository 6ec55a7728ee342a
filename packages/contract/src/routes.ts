import { Type, type Static, type TObject, type TSchema } from "@sinclair/typebox";
import { ApiKey, ApiKeyParams, CreateApiKeyBody, CreateApiKeyResponse } from "./api-keys.js";
import { AuditEntry, ListAuditQuery } from "./audit.js";
import { Command, CommandOutcome, CommandParams, IdempotencyHeaders, ListCommandsQuery, SendCommandBody } from "./commands.js";
import { Page, PageQuery } from "./common.js";
import type { ErrorCode } from "./errors.js";
import { EventsQuery, MusterEvent } from "./events.js";
import {
  AddTagBody,
  CreateHostBody,
  HeartbeatMetrics,
  Host,
  HostCredentials,
  HostParams,
  HostTagParams,
  HostWithRegistrationToken,
  ListHostsQuery,
  RefreshBody,
  RegisterHostBody,
  TagList,
} from "./hosts.js";
import { MeResponse } from "./me.js";
import { CertificateAuthorityInfo, HostProbe, RevocationList } from "./pki.js";
import { CaStatus, RotateCaBody, SigningKeys } from "./keys.js";
import { AddMemberBody, CreateTeamBody, Member, MemberParams, MemberResponse, Team, TeamParams, TeamResponse } from "./teams.js";
import { Health, MetricsText, Readiness } from "./system.js";
import { CreateUserBody, User, UserResponse } from "./users.js";
import { CreateWebhookBody, CreateWebhookResponse, ListWebhookDeliveriesQuery, Webhook, WebhookDelivery, WebhookParams } from "./webhooks.js";

/**
 * How a route authenticates:
 * - `api_key`: an operator key as `Authorization: Bearer <key>`;
 * - `host_token`: a host JWT as `X-Host-Token`;
 * - `body_secret`: a one-time secret in the request body (registration or refresh token).
 */
export type RouteAuth = "api_key" | "host_token" | "body_secret" | "none";

export interface RouteDef {
  operationId: string;
  method: "get" | "post" | "delete";
  path: string;
  auth: RouteAuth;
  tag: string;
  summary: string;
  params?: TObject;
  query?: TObject;
  /** Request headers the route reads, by their lower-case names; validated like the query. */
  headers?: TObject;
  body?: TSchema;
  /** The body may be left out altogether (heartbeat metrics). */
  bodyOptional?: boolean;
  status: 200 | 201 | 204;
  response?: TSchema;
  /** The success body's media type when it is not JSON (an event stream's schema is that of each event it carries). */
  responseType?: "text/plain" | "text/event-stream";
  errors: readonly ErrorCode[];
}

/** The header a host's JWT travels in (`auth: "host_token"`), in Node's lower case. */
export const HOST_TOKEN_HEADER = "x-host-token";

/**
 * The agent's clock (RFC 3339, milliseconds) on its heartbeats, so the control
 * plane can record the host's clock skew; absent or unreadable: not measured.
 */
export const AGENT_CLOCK_HEADER = "x-muster-agent-clock";

const ListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

const OPERATOR_ERRORS = ["invalid_request", "unauthorized", "forbidden", "not_found"] as const;

function route<const R extends RouteDef>(def: R): R {
  return def;
}

export const routes = {
  getMe: route({
    operationId: "getMe", method: "get", path: "/v1/me", auth: "api_key", tag: "Identity",
    summary: "Who the API key belongs to, the team it acts in and its role",
    status: 200, response: MeResponse, errors: ["unauthorized"],
  }),

  createUser: route({
    operationId: "createUser", method: "post", path: "/v1/users", auth: "api_key", tag: "Users",
    summary: "Create a user (admin)", body: CreateUserBody,
    status: 201, response: UserResponse, errors: [...OPERATOR_ERRORS, "conflict"],
  }),
  listUsers: route({
    operationId: "listUsers", method: "get", path: "/v1/users", auth: "api_key", tag: "Users",
    summary: "List users (admin)", query: ListQuery,
    status: 200, response: Page(User), errors: OPERATOR_ERRORS,
  }),

  createTeam: route({
    operationId: "createTeam", method: "post", path: "/v1/teams", auth: "api_key", tag: "Teams",
    summary: "Create a team (admin)", body: CreateTeamBody,
    status: 201, response: TeamResponse, errors: OPERATOR_ERRORS,
  }),
  listTeams: route({
    operationId: "listTeams", method: "get", path: "/v1/teams", auth: "api_key", tag: "Teams",
    summary: "List teams: all for admins, the caller's own otherwise", query: ListQuery,
    status: 200, response: Page(Team), errors: OPERATOR_ERRORS,
  }),
  addMember: route({
    operationId: "addMember", method: "post", path: "/v1/teams/{team_id}/members", auth: "api_key", tag: "Teams",
    summary: "Add a user to a team as owner or member (admin, team owner)", params: TeamParams, body: AddMemberBody,
    status: 201, response: MemberResponse, errors: [...OPERATOR_ERRORS, "conflict"],
  }),
  listMembers: route({
    operationId: "listMembers", method: "get", path: "/v1/teams/{team_id}/members", auth: "api_key", tag: "Teams",
    summary: "List a team's members, oldest first (admin, the team's own members)", params: TeamParams, query: ListQuery,
    status: 200, response: Page(Member), errors: OPERATOR_ERRORS,
  }),
  removeMember: route({
    operationId: "removeMember", method: "delete", path: "/v1/teams/{team_id}/members/{user_id}", auth: "api_key",
    tag: "Teams", summary: "Remove a user from a team (admin, team owner)", params: MemberParams,
    status: 204, errors: [...OPERATOR_ERRORS, "conflict"],
  }),

  createApiKey: route({
    operationId: "createApiKey", method: "post", path: "/v1/api-keys", auth: "api_key", tag: "API keys",
    summary: "Create an API key; the secret is in this response only", body: CreateApiKeyBody,
    status: 201, response: CreateApiKeyResponse, errors: OPERATOR_ERRORS,
  }),
  listApiKeys: route({
    operationId: "listApiKeys", method: "get", path: "/v1/api-keys", auth: "api_key", tag: "API keys",
    summary: "List API keys: all for admins, the caller's own otherwise", query: ListQuery,
    status: 200, response: Page(ApiKey), errors: OPERATOR_ERRORS,
  }),
  revokeApiKey: route({
    operationId: "revokeApiKey", method: "delete", path: "/v1/api-keys/{id}", auth: "api_key", tag: "API keys",
    summary: "Revoke an API key; it stops working at once", params: ApiKeyParams,
    status: 204, errors: OPERATOR_ERRORS,
  }),

  createHost: route({
    operationId: "createHost", method: "post", path: "/v1/hosts", auth: "api_key", tag: "Hosts",
    summary: "Create a host and its one-time registration token", body: CreateHostBody,
    status: 201, response: HostWithRegistrationToken, errors: OPERATOR_ERRORS,
  }),
  listHosts: route({
    operationId: "listHosts", method: "get", path: "/v1/hosts", auth: "api_key", tag: "Hosts",
    summary: "List the hosts the caller may see", query: ListHostsQuery,
    status: 200, response: Page(Host), errors: OPERATOR_ERRORS,
  }),
  getHost: route({
    operationId: "getHost", method: "get", path: "/v1/hosts/{id}", auth: "api_key", tag: "Hosts",
    summary: "Get one host", params: HostParams,
    status: 200, response: Host, errors: OPERATOR_ERRORS,
  }),
  deleteHost: route({
    operationId: "deleteHost", method: "delete", path: "/v1/hosts/{id}", auth: "api_key", tag: "Hosts",
    summary: "Delete a host; its credentials die at once", params: HostParams,
    status: 204, errors: OPERATOR_ERRORS,
  }),
  regenerateHostToken: route({
    operationId: "regenerateHostToken", method: "post", path: "/v1/hosts/{id}/token", auth: "api_key", tag: "Hosts",
    summary: "Issue a new registration token; the earlier unused one dies", params: HostParams,
    status: 201, response: HostWithRegistrationToken, errors: OPERATOR_ERRORS,
  }),
  addHostTag: route({
    operationId: "addHostTag", method: "post", path: "/v1/hosts/{id}/tags", auth: "api_key", tag: "Hosts",
    summary: "Add a tag (idempotent)", params: HostParams, body: AddTagBody,
    status: 204, errors: [...OPERATOR_ERRORS, "conflict"],
  }),
  removeHostTag: route({
    operationId: "removeHostTag", method: "delete", path: "/v1/hosts/{id}/tags/{tag}", auth: "api_key", tag: "Hosts",
    summary: "Remove a tag", params: HostTagParams,
    status: 204, errors: OPERATOR_ERRORS,
  }),
  probeHost: route({
    operationId: "probeHost", method: "post", path: "/v1/hosts/{id}/probe", auth: "api_key", tag: "Hosts",
    summary: "Call the host's agent over mTLS: reachable, latency, the certificate it serves (admins and the host's team owners; one per host per 10 s, 30 a minute per team)",
    params: HostParams, status: 200, response: HostProbe, errors: [...OPERATOR_ERRORS, "rate_limited"],
  }),
  listHostTags: route({
    operationId: "listHostTags", method: "get", path: "/v1/hosts/{id}/tags", auth: "api_key", tag: "Hosts",
    summary: "List a host's tags", params: HostParams,
    status: 200, response: TagList, errors: OPERATOR_ERRORS,
  }),

  sendCommand: route({
    operationId: "sendCommand", method: "post", path: "/v1/hosts/{id}/commands", auth: "api_key", tag: "Commands",
    summary: "Send a command to a host's agent over its channel; queued until the host is connected or the timeout passes. " +
      "With Idempotency-Key, a retry gets the first answer (Idempotent-Replayed: true); the same key with another body is 409",
    params: HostParams, headers: IdempotencyHeaders, body: SendCommandBody,
    status: 201, response: Command, errors: [...OPERATOR_ERRORS, "conflict"],
  }),
  listCommands: route({
    operationId: "listCommands", method: "get", path: "/v1/hosts/{id}/commands", auth: "api_key", tag: "Commands",
    summary: "A host's commands, newest first, optionally of one status", params: HostParams, query: ListCommandsQuery,
    status: 200, response: Page(Command), errors: OPERATOR_ERRORS,
  }),
  getCommand: route({
    operationId: "getCommand", method: "get", path: "/v1/hosts/{id}/commands/{command_id}", auth: "api_key", tag: "Commands",
    summary: "A command's state: queued, delivered, succeeded, failed or expired, with its result", params: CommandParams,
    status: 200, response: Command, errors: OPERATOR_ERRORS,
  }),

  listAudit: route({
    operationId: "listAudit", method: "get", path: "/v1/audit", auth: "api_key", tag: "Audit",
    summary: "Audit log, newest first: all for admins, the team's for owners", query: ListAuditQuery,
    status: 200, response: Page(AuditEntry), errors: OPERATOR_ERRORS,
  }),

  streamEvents: route({
    operationId: "streamEvents", method: "get", path: "/v1/events", auth: "api_key", tag: "Events",
    summary:
      "Server-Sent Events of what happens to the caller's hosts and commands (admins: all). Resume with Last-Event-ID or ?after=; " +
      "410 gone when that ID is past MUSTER_EVENTS_RETENTION_S. A comment every 15 s keeps the stream alive",
    query: EventsQuery,
    status: 200, response: MusterEvent, responseType: "text/event-stream", errors: [...OPERATOR_ERRORS, "gone"],
  }),

  createWebhook: route({
    operationId: "createWebhook", method: "post", path: "/v1/webhooks", auth: "api_key", tag: "Webhooks",
    summary: "Have events POSTed to a URL, signed with Muster-Signature (team owners for their team; admins for a team or all); the secret is in this response only",
    body: CreateWebhookBody,
    status: 201, response: CreateWebhookResponse, errors: OPERATOR_ERRORS,
  }),
  listWebhooks: route({
    operationId: "listWebhooks", method: "get", path: "/v1/webhooks", auth: "api_key", tag: "Webhooks",
    summary: "List webhooks: all for admins, the team's for its owners", query: ListQuery,
    status: 200, response: Page(Webhook), errors: OPERATOR_ERRORS,
  }),
  deleteWebhook: route({
    operationId: "deleteWebhook", method: "delete", path: "/v1/webhooks/{id}", auth: "api_key", tag: "Webhooks",
    summary: "Delete a webhook; deliveries not yet made are dropped", params: WebhookParams,
    status: 204, errors: OPERATOR_ERRORS,
  }),
  listWebhookDeliveries: route({
    operationId: "listWebhookDeliveries", method: "get", path: "/v1/webhooks/{id}/deliveries", auth: "api_key", tag: "Webhooks",
    summary: "A webhook's deliveries, newest first, each with every attempt", params: WebhookParams, query: ListWebhookDeliveriesQuery,
    status: 200, response: Page(WebhookDelivery), errors: OPERATOR_ERRORS,
  }),

  getCertificateAuthority: route({
    operationId: "getCertificateAuthority", method: "get", path: "/v1/ca", auth: "none", tag: "Host identity",
    summary: "The CA certificate that signs host certificates and the control plane's client certificate",
    status: 200, response: CertificateAuthorityInfo, errors: [],
  }),
  getRevocationList: route({
    operationId: "getRevocationList", method: "get", path: "/v1/ca/crl", auth: "none", tag: "Host identity",
    summary: "The CA's revocation list: certificates of deleted and re-registered hosts (ETag; If-None-Match answers 304)",
    status: 200, response: RevocationList, errors: [],
  }),

  rotateSigningKey: route({
    operationId: "rotateSigningKey", method: "post", path: "/v1/system/signing-keys/rotate", auth: "api_key", tag: "System",
    summary: "Rotate the host-token signing key (admin): new tokens use the new key at once, in every process; tokens of the earlier key verify until they expire",
    status: 200, response: SigningKeys, errors: OPERATOR_ERRORS,
  }),
  getCaStatus: route({
    operationId: "getCaStatus", method: "get", path: "/v1/system/ca", auth: "api_key", tag: "System",
    summary: "The CA rotation's phase, the active and previous CA, and the hosts still on the previous one (admin)",
    status: 200, response: CaStatus, errors: OPERATOR_ERRORS,
  }),
  rotateCa: route({
    operationId: "rotateCa", method: "post", path: "/v1/system/ca/rotate", auth: "api_key", tag: "System",
    summary: "Start a CA rotation (a new CA signs, both are trusted) or complete it (the previous CA is retired) (admin)",
    body: RotateCaBody, status: 200, response: CaStatus, errors: [...OPERATOR_ERRORS, "conflict"],
  }),

  getHealth: route({
    operationId: "getHealth", method: "get", path: "/healthz", auth: "none", tag: "System",
    summary: "Liveness: the process is up and serving (checks no store)",
    status: 200, response: Health, errors: [],
  }),
  getReadiness: route({
    operationId: "getReadiness", method: "get", path: "/readyz", auth: "none", tag: "System",
    summary: "Readiness: every backing store answered within 2 s; 503 with Retry-After names those that did not",
    status: 200, response: Readiness, errors: ["unavailable"],
  }),
  getMetrics: route({
    operationId: "getMetrics", method: "get", path: "/metrics", auth: "none", tag: "System",
    summary: "Prometheus metrics: requests, heartbeats, hosts by status, channels, commands (with MUSTER_METRICS_TOKEN set: only with Authorization: Bearer <token>)",
    status: 200, response: MetricsText, responseType: "text/plain", errors: ["unauthorized"],
  }),

  registerHost: route({
    operationId: "registerHost", method: "post", path: "/v1/hosts/register", auth: "body_secret", tag: "Host agent",
    summary: "Trade a registration token and the machine's specs for host credentials", body: RegisterHostBody,
    status: 201, response: HostCredentials, errors: ["invalid_request", "unauthorized", "conflict", "rate_limited", "upgrade_required"],
  }),
  refreshHostCredentials: route({
    operationId: "refreshHostCredentials", method: "post", path: "/v1/hosts/auth/refresh", auth: "body_secret",
    tag: "Host agent", summary: "Rotate a refresh token into fresh credentials (404: the host was deleted)", body: RefreshBody,
    status: 200, response: HostCredentials, errors: ["invalid_request", "unauthorized", "not_found", "rate_limited"],
  }),
  submitCommandResult: route({
    operationId: "submitCommandResult", method: "post", path: "/v1/hosts/{id}/commands/{command_id}/result", auth: "host_token",
    tag: "Host agent",
    summary: "Report a command's outcome when the channel is down (idempotent: the first result stays; " +
      "the same again is a no-op, another one 409)",
    params: CommandParams, body: CommandOutcome,
    status: 204, errors: ["invalid_request", "unauthorized", "forbidden", "not_found", "conflict"],
  }),
  heartbeat: route({
    operationId: "heartbeat", method: "post", path: "/v1/hosts/{id}/heartbeat", auth: "host_token", tag: "Host agent",
    summary: "Report the host alive, optionally with live metrics (X-Muster-Agent-Clock: the agent's time, for clock_skew_ms)", params: HostParams,
    body: HeartbeatMetrics, bodyOptional: true,
    status: 204, errors: ["invalid_request", "unauthorized", "forbidden", "not_found", "rate_limited", "upgrade_required"],
  }),
} as const;

export type Routes = typeof routes;
export type RouteName = keyof Routes;

type StaticOr<S, Fallback> = S extends TSchema ? Static<S> : Fallback;

/** The validated inputs of a route, as its handler receives them. */
export interface RouteInput<R extends RouteDef> {
  params: StaticOr<R["params"], Record<string, never>>;
  query: StaticOr<R["query"], Record<string, never>>;
  headers: StaticOr<R["headers"], Record<string, never>>;
  body: R["bodyOptional"] extends true ? StaticOr<R["body"], undefined> | undefined : StaticOr<R["body"], undefined>;
}

/** The success body of a route (`undefined` for 204). */
export type RouteResponse<R extends RouteDef> = StaticOr<R["response"], undefined>;
