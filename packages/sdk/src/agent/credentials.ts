import { IdSchema, type HostCredentials } from "@muster/contract";
import { Type, type Static } from "@sinclair/typebox";
import { Errors } from "@sinclair/typebox/errors";
import { Check } from "@sinclair/typebox/value";
import { MusterError } from "../errors.js";
import type { CommandOutcomeStore } from "./outcomes.js";

/**
 * What an agent keeps between starts: the host JWT, the rotating refresh token,
 * and what it needs to use them. A file format of the agent, not an API shape,
 * so it lives here rather than in the contract.
 */
/** The host's certificate and the key it made for it: what its mTLS endpoint serves and the CA it trusts. */
export const StoredTls = Type.Object({
  /** PKCS#8 PEM, generated on this host; it never leaves it. */
  private_key: Type.String({ minLength: 1 }),
  certificate: Type.String({ minLength: 1 }),
  certificate_expires_at: Type.String({ minLength: 1 }),
  /** The CAs to trust (PEM; two during a CA rotation of the control plane's, one otherwise). */
  ca_certificate: Type.String({ minLength: 1 }),
  /** Their revocation lists as of the last refresh (PEM, one per CA); the endpoint refuses what they list. */
  crl: Type.Optional(Type.String({ minLength: 1 })),
});
export type StoredTls = Static<typeof StoredTls>;

export const StoredCredentials = Type.Object({
  version: Type.Literal(1),
  host_id: IdSchema("host"),
  /** The control plane that issued these credentials. */
  control_plane: Type.String({ minLength: 1 }),
  token: Type.String({ minLength: 1 }),
  token_expires_at: Type.String({ minLength: 1 }),
  refresh_token: Type.String({ minLength: 1 }),
  refresh_token_expires_at: Type.String({ minLength: 1 }),
  heartbeat_interval_s: Type.Integer({ minimum: 1 }),
  /** When this agent received them, by its own clock (ISO 8601): the start of the token's lifetime. */
  obtained_at: Type.String({ minLength: 1 }),
  /** The control plane's certificate key pin (`sha256/…`), when it serves TLS itself; a certificate with another key is refused. */
  server_certificate_pin: Type.Optional(Type.String({ minLength: 1 })),
  /** Where the host said its agent listens (IP:PORT), as registered. */
  address: Type.Optional(Type.String({ minLength: 1 })),
  /** Present once the control plane has certified a key of this host. */
  tls: Type.Optional(StoredTls),
});
export type StoredCredentials = Static<typeof StoredCredentials>;

/** Where an agent keeps its credentials. `FileCredentialStore` is the one `muster-agent` uses. */
export interface CredentialStore {
  /** A human name for messages, e.g. the file's path. */
  readonly description: string;
  /** The saved credentials, or null if there are none. Throws `CredentialsFileError` when they cannot be read or make no sense. */
  load(): Promise<StoredCredentials | null>;
  /** Replaces the saved credentials all at once: a reader sees the old set or the new one, never a mix. */
  save(credentials: StoredCredentials): Promise<void>;
  /** Forgets the credentials (the host was deleted). Removing nothing is not an error. */
  remove(): Promise<void>;
  /** Where the agent keeps its command outcomes beside these credentials; without it they live in memory only. */
  commandOutcomes?(): CommandOutcomeStore;
}

/** An in-memory store, for daemons that keep secrets elsewhere, and for tests. */
export class MemoryCredentialStore implements CredentialStore {
  readonly description = "memory";
  constructor(public credentials: StoredCredentials | null = null) {}
  async load() {
    return this.credentials;
  }
  async save(credentials: StoredCredentials) {
    this.credentials = structuredClone(credentials);
  }
  async remove() {
    this.credentials = null;
  }
}

export type CredentialsProblem = "missing" | "unreadable" | "corrupt" | "unwritable";

/** The credentials cannot be used: absent, unreadable, not ours, or they cannot be saved. The message says what to do. */
export class CredentialsFileError extends MusterError {
  override name = "CredentialsFileError";
  constructor(
    readonly problem: CredentialsProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Checks a parsed credentials document; the error names the first field that is wrong. */
export function parseStoredCredentials(document: unknown, source: string): StoredCredentials {
  if (Check(StoredCredentials, document)) return document;
  const first = Errors(StoredCredentials, document).First();
  const where = first ? `${first.path || "/"}: ${first.message}` : "unexpected shape";
  throw new CredentialsFileError(
    "corrupt",
    `${source} is not a valid Muster credentials file (${where}); delete it and register again with a new registration token`,
  );
}

/**
 * The credentials to keep from a register or refresh response. `privateKeyPem`
 * is the key whose CSR went with the request; when the response certifies it,
 * key and certificate replace `previousTls`, else the previous ones stay. A pin
 * the response does not repeat is kept: only a control plane serving TLS itself
 * hands one out, and a refresh must not drop it silently.
 */
export function toStoredCredentials(
  response: HostCredentials,
  controlPlane: string,
  obtainedAtMs: number,
  privateKeyPem: string | null = null,
  previousTls?: StoredTls,
  previousPin?: string,
): StoredCredentials {
  const pin = response.server_certificate_pin ?? previousPin;
  const tls: StoredTls | undefined =
    privateKeyPem && response.certificate && response.certificate_expires_at && response.ca_certificate
      ? {
          private_key: privateKeyPem,
          certificate: response.certificate,
          certificate_expires_at: response.certificate_expires_at,
          ca_certificate: response.ca_certificate,
          ...(response.crl ? { crl: response.crl } : {}),
        }
      : previousTls;
  return {
    version: 1,
    host_id: response.host.id,
    control_plane: controlPlane,
    token: response.token,
    token_expires_at: response.token_expires_at,
    refresh_token: response.refresh_token,
    refresh_token_expires_at: response.refresh_token_expires_at,
    heartbeat_interval_s: response.heartbeat_interval_s,
    obtained_at: new Date(obtainedAtMs).toISOString(),
    ...(pin === undefined ? {} : { server_certificate_pin: pin }),
    ...(response.host.address ? { address: response.host.address } : {}),
    ...(tls ? { tls } : {}),
  };
}

/**
 * When to refresh, on this agent's clock: after `ratio` of the token's
 * lifetime. The lifetime comes from the JWT's own `iat`/`exp` (both the
 * control plane's clock), so a skewed local clock does not shift it; it falls
 * back to `token_expires_at` when the token cannot be decoded.
 */
export function refreshDueAt(credentials: StoredCredentials, ratio: number): number {
  const obtainedAt = Date.parse(credentials.obtained_at);
  const claims = decodeJwtClaims(credentials.token);
  let lifetimeMs =
    claims && typeof claims.exp === "number" && typeof claims.iat === "number"
      ? (claims.exp - claims.iat) * 1000
      : Date.parse(credentials.token_expires_at) - obtainedAt;
  if (!Number.isFinite(lifetimeMs) || lifetimeMs < 0) lifetimeMs = 0;
  if (!Number.isFinite(obtainedAt)) return 0;
  return obtainedAt + lifetimeMs * ratio;
}

function decodeJwtClaims(token: string): { iat?: unknown; exp?: unknown } | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), "="))) as { iat?: unknown; exp?: unknown };
  } catch {
    return null;
  }
}
