import { BlockList, isIP } from "node:net";
import type { Context } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import { header } from "./node-request.js";

/** The socket's peer; null when the app is driven without a socket (tests, other runtimes). */
function peerAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** Each configuration's list, built once rather than per request. */
const proxyLists = new WeakMap<string[], BlockList>();

function proxyList(proxies: string[]): BlockList {
  const built = proxyLists.get(proxies);
  if (built) return built;
  const list = new BlockList();
  for (const entry of proxies) {
    const [address = "", prefix] = entry.split("/");
    const type = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  proxyLists.set(proxies, list);
  return list;
}

function isTrustedProxy(address: string, proxies: string[]): boolean {
  return proxyList(proxies).check(address, isIP(address) === 6 ? "ipv6" : "ipv4");
}

/**
 * The client's address. X-Forwarded-For is believed only as far as it was
 * written by configured trusted proxies: walking it from the right, the first
 * address that is not a trusted proxy is the client. Anyone can send the
 * header, so with no trusted proxies it is ignored entirely.
 */
export function clientAddress(c: Context, trustedProxies: string[]): string | null {
  const peer = peerAddress(c);
  if (peer === null) return null;
  let client = normalize(peer);
  if (trustedProxies.length === 0) return client;
  const hops = (header(c, "x-forwarded-for") ?? "").split(",").map((hop) => normalize(hop.trim())).filter(Boolean);
  for (const hop of hops.reverse()) {
    if (!isTrustedProxy(client, trustedProxies) || isIP(hop) === 0) break;
    client = hop;
  }
  return client;
}

const FORWARDED_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The origin (scheme, host, port) the client reached. X-Forwarded-Proto and
 * X-Forwarded-Host are believed only from a trusted proxy, as X-Forwarded-For is.
 */
export function requestOrigin(c: Context, trustedProxies: string[]): string {
  const own = new URL(c.req.url);
  const peer = peerAddress(c);
  if (peer === null || trustedProxies.length === 0 || !isTrustedProxy(normalize(peer), trustedProxies)) return own.origin;
  const proto = header(c, "x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  const host = header(c, "x-forwarded-host")?.split(",")[0]?.trim();
  const scheme = proto === "http" || proto === "https" ? proto : own.protocol.slice(0, -1);
  return `${scheme}://${host !== undefined && FORWARDED_HOST.test(host) ? host : own.host}`;
}
