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
 * certificate, answering only a client certificate of the same CA that names
 * the control plane. When the agent refreshes, the new certificate is swapped in
 * without a restart; connections already open finish on the old one.
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
    const server = createServer(
      { ...secureContextOptions(tls), requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3" },
      (request, response) => {
        const identity = this.identity();
        if (request.method === "GET" && request.url === "/v1/identity" && identity) {
          response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(identity));
          return;
        }
        response.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: "no such endpoint" } }));
      },
    );
    // The chain was verified in the handshake; here the peer must also *be* the control plane.
    server.on("secureConnection", (socket: TLSSocket) => {
      const names = socket.getPeerCertificate().subjectaltname?.split(", ") ?? [];
      if (!names.includes(`URI:${CONTROL_PLANE_URI}`)) {
        this.options.logger?.warn({ peer: socket.remoteAddress, names }, "mTLS endpoint: refused a client that is not the control plane");
        socket.destroy();
      }
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
    if (!tls || !this.server || tls.certificate === this.current?.certificate) return;
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

function secureContextOptions(tls: StoredTls): SecureContextOptions {
  return { key: tls.private_key, cert: tls.certificate, ca: tls.ca_certificate };
}
