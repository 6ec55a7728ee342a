import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { SecureContextOptions, TLSSocket } from "node:tls";
import type { StoredTls } from "./credentials.js";
import type { HostAgent } from "./host-agent.js";
import type { AgentLogger } from "./types.js";

/** The URI SAN of the control plane's client certificate: the only peer the endpoint answers. */
export const CONTROL_PLANE_URI = "spiffe://muster/control-plane";

export interface AgentEndpointOptions {
  agent: HostAgent;
  port: number;
  /** The interface to listen on (default: all). */
  host?: string;
  agentVersion?: string;
  logger?: AgentLogger;
}

/** What `GET /v1/identity` answers. */
export interface AgentIdentity {
  host_id: string;
  agent_version: string | null;
  state: string;
  certificate_expires_at: string;
}

/**
 * The agent's mTLS endpoint at its registered address: TLS 1.3 with the host's
 * certificate, answering only a client certificate of a CA it was given (two
 * during a CA rotation) that names the control plane and is not on its CA's
 * revocation list (as of the last refresh). When the agent refreshes, the new
 * certificate is swapped in without a restart; connections already open
 * finish on the old one.
 */
export class AgentEndpoint {
  private server: Server | null = null;
  private unsubscribe: (() => void) | null = null;
  private current: StoredTls | null = null;

  constructor(private readonly options: AgentEndpointOptions) {}

  /** Starts listening; the agent must hold a certificate. Resolves with the port (useful with port 0). */
  async start(): Promise<number> {
    const tls = this.options.agent.credentials?.tls;
    if (!tls) throw new Error("AgentEndpoint: the agent holds no host certificate yet (register with a control plane that issues them)");
    this.current = tls;
    // The handshake verifies the client's chain (CA, validity, revocation list); the verdict is ours
    // to act on, so the reason can be logged: a refused client is cut off before any request is read.
    const server = createServer(
      { ...secureContextOptions(tls), requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" },
      (request, response) => {
        const identity = this.identity();
        if (refusal(request.socket as TLSSocket) !== null) {
          request.socket.destroy();
          return;
        }
        if (request.method === "GET" && request.url === "/v1/identity" && identity) {
          response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(identity));
          return;
        }
        response.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: "no such endpoint" } }));
      },
    );
    server.on("secureConnection", (socket: TLSSocket) => {
      const reason = refusal(socket);
      if (reason === null) return;
      this.options.logger?.warn({ peer: socket.remoteAddress, reason }, "mTLS endpoint: refused a client");
      socket.destroy();
    });
    server.on("tlsClientError", (error, socket) => {
      this.options.logger?.debug({ peer: socket.remoteAddress, err: error.message }, "mTLS endpoint: handshake refused");
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.unsubscribe = this.options.agent.on("credentialsRefreshed", ({ credentials }) => this.swap(credentials.tls));
    // A refresh while it was starting (an agent back after a CA rotation refreshes at its first beat) is taken up now.
    this.swap(this.options.agent.credentials?.tls);
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private swap(tls: StoredTls | undefined): void {
    if (!tls || !this.server || (tls.certificate === this.current?.certificate && tls.crl === this.current?.crl)) return;
    this.server.setSecureContext(secureContextOptions(tls));
    this.current = tls;
    this.options.logger?.info({ certificate_expires_at: tls.certificate_expires_at }, "mTLS endpoint: now serving the renewed certificate");
  }

  private identity(): AgentIdentity | null {
    const hostId = this.options.agent.hostId;
    if (!hostId || !this.current) return null;
    return {
      host_id: hostId,
      agent_version: this.options.agentVersion ?? null,
      state: this.options.agent.state,
      certificate_expires_at: this.current.certificate_expires_at,
    };
  }
}

/** Why a TLS client may not talk to the endpoint, or null when it is the control plane with a good certificate. */
function refusal(socket: TLSSocket): string | null {
  const peer = socket.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0) return "no client certificate";
  if (!socket.authorized) return String(socket.authorizationError);
  const names = peer.subjectaltname?.split(", ") ?? [];
  return names.includes(`URI:${CONTROL_PLANE_URI}`) ? null : `not the control plane (${names.join(", ") || "no names"})`;
}

/**
 * The endpoint's TLS: its certificate, and the trusted CAs with their revocation
 * lists. During a CA rotation both come as bundles of two. Node reads every
 * certificate of a `ca` string but only the first CRL of a `crl` string, and
 * checks each client certificate against its own CA's list, so the lists go
 * in one by one.
 */
function secureContextOptions(tls: StoredTls): SecureContextOptions {
  const crls = tls.crl?.match(/-----BEGIN X509 CRL-----[^-]+-----END X509 CRL-----/g) ?? [];
  return { key: tls.private_key, cert: tls.certificate, ca: tls.ca_certificate, ...(crls.length > 0 ? { crl: crls } : {}) };
}
