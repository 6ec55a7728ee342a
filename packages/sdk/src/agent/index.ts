/*
 * The host agent runtime (SPEC §7). `HostAgent` uses fetch for HTTP and `ws`
 * for the agent channel; the other Node-only pieces (FileCredentialStore, detectHostSpecs, createMetricsSampler)
 * live in their own modules and are handed to it.
 */
export { HostAgent, RegistrationError } from "./host-agent.js";
export type {
  AgentExit,
  AgentLogger,
  CommandHandler,
  HostAgentEvents,
  HostAgentOptions,
  HostAgentState,
  RefreshReason,
} from "./types.js";
export {
  CredentialsFileError,
  MemoryCredentialStore,
  StoredCredentials,
  StoredTls,
  parseStoredCredentials,
  refreshDueAt,
  type CredentialStore,
  type CredentialsProblem,
} from "./credentials.js";
export { FileCommandOutcomeStore, FileCredentialStore, type CredentialFs } from "./file-store.js";
export {
  CommandOutcomesDocument,
  MemoryCommandOutcomeStore,
  OUTCOMES_MAX,
  OUTCOME_RETENTION_AFTER_EXPIRY_MS,
  RESTARTED_MID_COMMAND,
  RememberedCommand,
  type CommandOutcome,
  type CommandOutcomeStore,
} from "./outcomes.js";
export { AgentEndpoint, CONTROL_PLANE_URI, type AgentEndpointOptions, type AgentIdentity } from "./endpoint.js";
export { createMetricsSampler, detectHostSpecs, type HostSpecs } from "./specs.js";
export { backoffDelayMs, heartbeatDelayMs, BACKOFF_MAX_MS, BACKOFF_MIN_MS, HEARTBEAT_JITTER_MIN } from "./backoff.js";
export { systemClock, type AgentClock } from "./clock.js";
export { CertificatePinError, certificatePin } from "./tls.js";
