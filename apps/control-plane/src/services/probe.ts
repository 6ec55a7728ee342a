import type { HostProbe } from "@muster/contract";
import { and, eq, isNull } from "drizzle-orm";
import { request } from "node:https";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { hostCertificates, hosts, type HostRow } from "../db/schema/index.js";
import { DomainError } from "../errors.js";
import { AddressRefused, type CheckedTarget } from "../net/address-policy.js";
import type { CertificateAuthority } from "../pki/ca.js";
import { hostUri } from "../pki/x509.js";
import type { Actor } from "./actor.js";
import type { ServiceDeps } from "./context.js";
import { hostFor } from "./hosts.js";
import { enforceLimits } from "./rate-limit.js";

const PROBE_TIMEOUT_MS = 5_000;
/** Probes one process runs at once; more wait for none: they are refused (429) at once. */
export const PROBES_IN_FLIGHT = 4;
/** Probes a team (admins' regular hosts count as one team) may start a minute. */
export const PROBES_PER_TEAM_PER_MINUTE = 30;

/**
 * Why a probe failed, from a fixed set: nothing an agent, OpenSSL or Node says
 * reaches the client, so a probe tells a caller no more than whether a TLS
 * endpoint of ours answers there.
 */
export const PROBE_FAILURES = {
  notRegistered: "not registered",
  addressNotAllowed: "address not allowed",
  refused: "refused",
  timedOut: "timed out",
  unreachable: "unreachable",
  handshake: "tls handshake failed",
  unexpectedAnswer: "unexpected answer",
  wrongCa: "certificate rejected: not signed by this control plane's CA",
  expired: "certificate rejected: expired",
  notYetValid: "certificate rejected: not yet valid",
  revoked: "certificate rejected: revoked",
  wrongHost: "certificate rejected: does not name this host",
  superseded: "certificate rejected: superseded by a newer certificate of this host",
} as const;

type ProbeFailure = (typeof PROBE_FAILURES)[keyof typeof PROBE_FAILURES];

class ProbeFailed extends Error {
  constructor(readonly reason: ProbeFailure) {
    super(reason);
  }
}

const BY_CODE: Record<string, ProbeFailure> = {
  ECONNREFUSED: PROBE_FAILURES.refused,
  ETIMEDOUT: PROBE_FAILURES.timedOut,
  EHOSTUNREACH: PROBE_FAILURES.unreachable,
  ENETUNREACH: PROBE_FAILURES.unreachable,
  ENOTFOUND: PROBE_FAILURES.unreachable,
  EAI_AGAIN: PROBE_FAILURES.unreachable,
  CERT_HAS_EXPIRED: PROBE_FAILURES.expired,
  CERT_NOT_YET_VALID: PROBE_FAILURES.notYetValid,
  CERT_REVOKED: PROBE_FAILURES.revoked,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: PROBE_FAILURES.wrongCa,
  DEPTH_ZERO_SELF_SIGNED_CERT: PROBE_FAILURES.wrongCa,
  SELF_SIGNED_CERT_IN_CHAIN: PROBE_FAILURES.wrongCa,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: PROBE_FAILURES.wrongCa,
  CERT_SIGNATURE_FAILURE: PROBE_FAILURES.wrongCa,
  UNABLE_TO_GET_ISSUER_CERT: PROBE_FAILURES.wrongCa,
  CERT_UNTRUSTED: PROBE_FAILURES.wrongCa,
  // We hold revocation lists for our CAs only: a certificate whose issuer has none is not of our CAs.
  UNABLE_TO_GET_CRL: PROBE_FAILURES.wrongCa,
};

function reasonOf(error: unknown): ProbeFailure {
  if (error instanceof ProbeFailed) return error.reason;
  if (error instanceof AddressRefused) return PROBE_FAILURES.addressNotAllowed;
  const code = (error as { code?: unknown }).code;
  // Anything else went wrong between connecting and a verified handshake (the agent hung up on us, no common protocol, …).
  return (typeof code === "string" && BY_CODE[code]) || PROBE_FAILURES.handshake;
}

/** This process's probes under way; a cap, so no caller can make the control plane hold many connections open. */
export class ProbeSlots {
  private used = 0;

  take(): boolean {
    if (this.used >= PROBES_IN_FLIGHT) return false;
    this.used++;
    return true;
  }

  release(): void {
    this.used--;
  }
}

interface AgentAnswer {
  latencyMs: number;
  peer: PeerCertificate;
  protocol: string | null;
  body: { agent_version?: unknown };
}

/**
 * Calls the host's agent at its registered address over mutual TLS 1.3 (an
 * owner's action: it makes the control plane connect somewhere). The address
 * is checked again after resolution and the checked IP is the one dialled;
 * the control plane shows its own client certificate (of the CA the host
 * trusts) and accepts only a server certificate of a trusted CA naming this
 * very host, not on its CA's revocation list and still one of the host's live
 * certificates. The outcome is recorded on the host, where members read it.
 */
export async function probeHost(deps: ServiceDeps, actor: Actor, hostId: string): Promise<HostProbe> {
  const host = await hostFor(deps.db, actor, hostId, "manage");
  await enforceLimits(deps, "probe", [
    { kind: "host", subject: hostId, limit: deps.config.probeIntervalS > 0 ? 1 : 0, windowMs: deps.config.probeIntervalS * 1000, what: "probes of this host" },
    { kind: "team", subject: host.teamId ?? "regular", limit: PROBES_PER_TEAM_PER_MINUTE, windowMs: 60_000, what: "probes in this team" },
  ]);
  if (!deps.probeSlots.take()) {
    throw new DomainError("rate_limited", `this control plane is running ${PROBES_IN_FLIGHT} probes already; retry in a second`, 1);
  }
  const probedAt = deps.clock.now();
  let answer: AgentAnswer | null = null;
  let failure: ProbeFailure | null = null;
  try {
    if (!host.address) throw new ProbeFailed(PROBE_FAILURES.notRegistered);
    const target = await deps.addresses.resolve(deps.addresses.checkAddress(host.address));
    const ca = await caTrustedBy(deps, host);
    const [identity, list] = await Promise.all([deps.identity.get(ca), deps.revocationLists.current()]);
    answer = await callAgent(target, hostId, { ...identity, ca: deps.ca.bundlePem, crl: list.crls });
    if (!(await isLiveCertificate(deps, hostId, answer.peer.serialNumber.toLowerCase()))) throw new ProbeFailed(PROBE_FAILURES.superseded);
  } catch (error) {
    answer = null;
    failure = reasonOf(error);
    deps.logger.debug({ host_id: hostId, err: error }, "probe failed");
  } finally {
    deps.probeSlots.release();
  }
  const certificate = answer
    ? {
        fingerprint_sha256: answer.peer.fingerprint256.replace(/:/g, "").toLowerCase(),
        serial: answer.peer.serialNumber.toLowerCase(),
        expires_at: new Date(answer.peer.valid_to).toISOString(),
      }
    : null;
  const probe: HostProbe = {
    host_id: hostId,
    reachable: answer !== null,
    latency_ms: answer ? Math.round(answer.latencyMs * 10) / 10 : null,
    tls_version: answer?.protocol ?? null,
    certificate,
    agent_version: typeof answer?.body.agent_version === "string" ? answer.body.agent_version : null,
    error: failure,
    probed_at: probedAt.toISOString(),
  };
  await deps.db
    .update(hosts)
    .set({
      mtlsEnabled: answer !== null,
      lastProbe: probe,
      ...(certificate ? { certFingerprint: certificate.fingerprint_sha256, certExpiresAt: new Date(certificate.expires_at) } : {}),
    })
    .where(eq(hosts.id, hostId));
  return probe;
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

/** Whether the serial is one of the host's certificates still trusted: neither revoked nor superseded. */
async function isLiveCertificate(deps: ServiceDeps, hostId: string, serial: string): Promise<boolean> {
  const [row] = await deps.db
    .select({ serial: hostCertificates.serial })
    .from(hostCertificates)
    .where(
      and(
        eq(hostCertificates.serial, serial),
        eq(hostCertificates.hostId, hostId),
        isNull(hostCertificates.revokedAt),
        isNull(hostCertificates.supersededAt),
      ),
    );
  return row !== undefined;
}

function callAgent(target: CheckedTarget, hostId: string, trust: { cert: string; key: string; ca: string; crl: string[] }): Promise<AgentAnswer> {
  const expected = `URI:${hostUri(hostId)}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        // The checked IP itself, never the name again: a second resolution could answer something else.
        host: target.ip,
        family: target.family,
        port: target.port,
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
          cert.subjectaltname?.split(", ").includes(expected) ? undefined : new ProbeFailed(PROBE_FAILURES.wrongHost),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peer = socket.getPeerCertificate();
        const protocol = socket.getProtocol();
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
          if (text.length > 64 * 1024) req.destroy(new ProbeFailed(PROBE_FAILURES.unexpectedAnswer));
        });
        res.on("error", reject);
        res.on("end", () => {
          const body = parseObject(text);
          if (res.statusCode !== 200 || body?.host_id !== hostId) return reject(new ProbeFailed(PROBE_FAILURES.unexpectedAnswer));
          resolve({ latencyMs: performance.now() - started, peer, protocol, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new ProbeFailed(PROBE_FAILURES.timedOut)));
    req.on("error", reject);
    req.end();
  });
}

function parseObject(text: string): { host_id?: unknown; agent_version?: unknown } | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : null;
  } catch {
    return null;
  }
}
