/*
 * The public API of MusterClient. This entry imports no Node built-in (fetch
 * only), so it is also the browser-safe entry point of the published package.
 */
export { MusterClient, type MusterClientOptions } from "./client.js";
export { Hosts, HostTags } from "./hosts.js";
export { HostCommands, type CommandWaitOptions, type SendCommandOptions } from "./commands.js";
export { Teams, TeamMembers } from "./teams.js";
export { Users } from "./users.js";
export { ApiKeys } from "./api-keys.js";
export { Audit } from "./audit.js";
export { Events, MusterEventsGoneError, type WatchOptions } from "./events.js";
export { Webhooks, signWebhookPayload, verifyWebhookSignature, type VerifyOptions } from "./webhooks.js";
export { System } from "./system.js";
export { Paginator, paginate, type ItemOf, type ListFilters, type ListRoute, type PageOf } from "./pagination.js";
export { MusterWaitTimeoutError, type WaitOptions } from "./wait.js";
export type { BodyOf, QueryOf, ResponseOf } from "./types.js";
export * from "../errors.js";
export { Transport, type CallInput, type RequestOptions, type TransportOptions } from "../transport.js";
export type {
  ApiKey,
  AuditEntry,
  CaStatus,
  Command,
  CommandPayload,
  CommandStatus,
  CreateApiKeyResponse,
  CreateWebhookResponse,
  ErrorCode,
  EventOfFilter,
  EventType,
  EventTypeFilter,
  Host,
  HostStatus,
  HostType,
  HostWithRegistrationToken,
  Member,
  MeResponse,
  MusterEvent,
  Role,
  SigningKeys,
  Team,
  TeamRole,
  User,
  Webhook,
  WebhookDelivery,
} from "@muster/contract";
