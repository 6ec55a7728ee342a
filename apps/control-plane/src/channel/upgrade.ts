import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { ERROR_STATUS, HOST_TOKEN_HEADER, idPattern, type ErrorCode } from "@muster/contract";
import type { HostClaims } from "../auth/host-tokens.js";
import { DomainError, invalid, unauthorized } from "../errors.js";
import type { AppDeps } from "../http/env.js";

const CHANNEL_PATH = /^\/v1\/hosts\/([^/?#]+)\/channel(?:\?.*)?$/;
const HOST_ID = new RegExp(idPattern("host"));

/** The host ID of a channel URL, or null when the URL is not a channel's. */
export function channelHostId(url: string | undefined): string | null {
  return CHANNEL_PATH.exec(url ?? "")?.[1] ?? null;
}

/**
 * Authenticates a channel's upgrade request exactly as a heartbeat is: the host
 * token in `X-Host-Token` (never the query string, which ends up in logs), for
 * the host in the path, whose credentials are still live.
 */
export async function authenticateUpgrade(deps: AppDeps, request: IncomingMessage, hostId: string): Promise<HostClaims> {
  if (!HOST_ID.test(hostId)) throw invalid("path parameter 'id': expected a host-… identifier");
  const token = request.headers[HOST_TOKEN_HEADER];
  if (typeof token !== "string" || token === "") throw unauthorized("missing host token: send 'X-Host-Token: <jwt>'");
  const claims = await deps.hostTokens.verify(token);
  await deps.liveness.authorize(claims, hostId);
  return claims;
}

/** Answers a refused upgrade with the SPEC §1 envelope over plain HTTP and drops the socket. */
export function refuseUpgrade(socket: Duplex, error: unknown): void {
  const [code, message]: [ErrorCode, string] =
    error instanceof DomainError ? [error.code, error.message] : ["unavailable", "a backing store is unreachable; retry shortly"];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${ERROR_STATUS[code]} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
