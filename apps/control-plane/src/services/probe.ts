import type { HostProbe } from "@muster/contract";
import { and, eq } from "drizzle-orm";
import { request } from "node:https";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { hostCertificates, hosts, type HostRow } from "../db/schema/index.js";
import type { CertificateAuthority } from "../pki/ca.js";
import { hostUri } from "../pki/x509.js";
import type { Actor } from "./actor.js";
import type { ServiceDeps } from "./context.js";
import { revocationLists } from "./host-certificates.js";
import { hostFor } from "./hosts.js";

const PROBE_TIMEOUT_MS = 5_000;

interface AgentAnswer {
  latencyMs: number;
  peer: PeerCertificate;
  protocol: string | null;
  body: { agent_version?: unknown };
}

/**
 * Calls the host's agent at its registered address over mutual TLS 1.3: the
 * control plane shows its own client certificate, and accepts only a server
 * certificate of a trusted CA naming this very host (its SPIFFE URI) and not
 * on its CA's revocation list. The outcome is recorded on the host
 * (mtls_enabled, and the certificate the agent serves).
 */
export async function probeHost(deps: ServiceDeps, actor: Actor, hostId: string): Promise<HostProbe> {
  const host = await hostFor(deps.db, actor, hostId, "read");
  const probedAt = deps.clock.now();
  let answer: AgentAnswer | null = null;
  let failure: string | null = null;
  if (!host.address) {
    failure = "the host has not registered yet: there is no address to call";
  } else {
    try {
      const ca = await caTrustedBy(deps, host);
      const [identity, { crls }] = await Promise.all([deps.identity.get(ca), revocationLists(deps.db, deps)]);
      answer = await callAgent(host.address, hostId, { ...identity, ca: deps.ca.bundlePem, crl: crls });
    } catch (error) {
      failure = describe(error);
    }
  }
  const certificate = answer
    ? {
        fingerprint_sha256: answer.peer.fingerprint256.replace(/:/g, "").toLowerCase(),
        serial: answer.peer.serialNumber.toLowerCase(),
        expires_at: new Date(answer.peer.valid_to).toISOString(),
      }
    : null;
  await deps.db
    .update(hosts)
    .set({
      mtlsEnabled: answer !== null,
      ...(certificate ? { certFingerprint: certificate.fingerprint_sha256, certExpiresAt: new Date(certificate.expires_at) } : {}),
    })
    .where(eq(hosts.id, hostId));
  return {
    host_id: hostId,
    reachable: answer !== null,
    latency_ms: answer ? Math.round(answer.latencyMs * 10) / 10 : null,
    tls_version: answer?.protocol ?? null,
    certificate,
    agent_version: typeof answer?.body.agent_version === "string" ? answer.body.agent_version : null,
    error: failure,
    probed_at: probedAt.toISOString(),
  };
}

/**
 * The CA whose client certificate the host's agent accepts. An agent learns
 * the CAs to trust with its certificate: one whose newest certificate is of
 * the active CA got the whole bundle with it; one whose newest certificate is
 * of the previous CA (it has not refreshed since the rotation started) trusts
 * that one only.
 */
async function caTrustedBy(deps: ServiceDeps, host: HostRow): Promise<CertificateAuthority> {
  const { previous, active } = deps.ca;
  if (!previous || !host.certFingerprint) return active;
  const [newest] = await deps.db
    .select({ caId: hostCertificates.caId })
    .from(hostCertificates)
    .where(and(eq(hostCertificates.hostId, host.id), eq(hostCertificates.fingerprint, host.certFingerprint)));
  return newest?.caId === previous.id ? previous : active;
}

function callAgent(address: string, hostId: string, trust: { cert: string; key: string; ca: string; crl: string[] }): Promise<AgentAnswer> {
  const split = address.lastIndexOf(":");
  const host = address.slice(0, split).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(split + 1));
  const expected = `URI:${hostUri(hostId)}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path: "/v1/identity",
        method: "GET",
        agent: false,
        timeout: PROBE_TIMEOUT_MS,
        minVersion: "TLSv1.3",
        cert: trust.cert,
        key: trust.key,
        ca: trust.ca,
        crl: trust.crl,
        // Not the address's name: the certificate must name this host, whatever address it answers at.
        checkServerIdentity: (_name, cert) =>
          cert.subjectaltname?.split(", ").includes(expected)
            ? undefined
            : new Error(`the agent at ${address} presented a certificate that does not name ${hostUri(hostId)}`),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peer = socket.getPeerCertificate();
        const protocol = socket.getProtocol();
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("error", reject);
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`the agent answered ${res.statusCode}`));
          let body: AgentAnswer["body"];
          try {
            body = JSON.parse(text) as AgentAnswer["body"];
          } catch {
            return reject(new Error("the agent's identity answer is not JSON"));
          }
          if ((body as { host_id?: unknown }).host_id !== hostId) return reject(new Error(`the agent at ${address} says it is another host`));
          resolve({ latencyMs: performance.now() - started, peer, protocol, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)));
    req.on("error", reject);
    req.end();
  });
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  EHOSTUNREACH: "host unreachable",
  ENOTFOUND: "address not found",
  CERT_HAS_EXPIRED: "the agent's certificate has expired",
  CERT_REVOKED: "the agent's certificate is revoked",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the agent's certificate is not signed by this control plane's CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the agent's certificate is not signed by this control plane's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "the agent's certificate is not signed by this control plane's CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the agent's certificate is not signed by this control plane's CA",
};

function describe(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  return (code && REASONS[code]) ?? message ?? String(error);
}
