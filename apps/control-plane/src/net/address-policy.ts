import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";

type Ip = ipaddr.IPv4 | ipaddr.IPv6;

/** Where the control plane would connect: a host (IP or DNS name) and a port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** A resolved, checked address to connect to; connecting to anything else would skip the check. */
export interface CheckedTarget {
  ip: string;
  family: 4 | 6;
  port: number;
}

/** The address may not be connected to; the message names the range and the setting that decides. */
export class AddressRefused extends Error {
  override name = "AddressRefused";
}

export const ALLOW_SETTING = "MUSTER_PROBE_ALLOW_CIDRS";
export const DENY_SETTING = "MUSTER_PROBE_DENY_CIDRS";

/**
 * Ranges the control plane never connects to unless allowed: nothing a host
 * reports should point the control plane at itself, its machine's neighbours on
 * a link, the cloud's metadata service, or a whole segment at once. Private
 * ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are not here: datacenter hosts
 * live there.
 */
const BUILT_IN: ReadonlyArray<readonly [string, string]> = [
  ["0.0.0.0/8", "unspecified"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local, where cloud metadata services answer"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "IPv4-compatible IPv6, deprecated"],
  ["fe80::/10", "link-local"],
  ["ff00::/8", "multicast"],
];

interface Rule {
  cidr: string;
  kind: "ipv4" | "ipv6";
  range: [Ip, number];
  allow: boolean;
  /** The setting that wrote it; null for the built-in refusals. */
  setting: string | null;
  label: string | null;
}

export type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;

const systemLookup: Lookup = (host) => lookup(host, { all: true, verbatim: true });

/** "1.2.3.4" or "::1" as a one-address CIDR; IPv4-mapped IPv6 ranges as the IPv4 range they hold. */
function parseCidr(entry: string): [Ip, number] {
  const [address, prefix] = entry.includes("/") ? ipaddr.parseCIDR(entry) : ((ip) => [ip, ip.kind() === "ipv4" ? 32 : 128] as [Ip, number])(ipaddr.parse(entry));
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), prefix - 96];
  }
  return [address, prefix];
}

/** Whether a setting's entry is an IP address or a CIDR; config.ts reports the ones that are not. */
export function isCidrOrAddress(entry: string): boolean {
  try {
    parseCidr(entry);
    return true;
  } catch {
    return false;
  }
}

/** The IPv4 address an IPv6 address only wraps (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96), or the address itself. */
function unwrap(ip: Ip): Ip {
  if (ip.kind() === "ipv4") return ip;
  const v6 = ip as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  if (v6.range() === "rfc6052") {
    const parts = v6.parts;
    return new ipaddr.IPv4([parts[6]! >> 8, parts[6]! & 0xff, parts[7]! >> 8, parts[7]! & 0xff]);
  }
  return v6;
}

const DNS_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$/;

/**
 * Which addresses the control plane may connect to on a host's word (the mTLS
 * probe; webhook URLs reuse it). Every address is classified against the
 * built-in refusals and the operator's ranges; the most specific range
 * (longest prefix) decides, the operator's settings before the built-in list
 * and a refusal before an allowance at the same length. So
 * `MUSTER_PROBE_ALLOW_CIDRS=127.0.0.0/8` lets an agent on the same machine in,
 * and `MUSTER_PROBE_DENY_CIDRS=10.9.0.0/16` keeps a segment out even inside an
 * allowed range.
 *
 * Names are checked after resolution, every answer of it, and the caller
 * connects to the checked IP itself, so a name that resolves differently a
 * moment later (DNS rebinding) changes nothing.
 */
export class AddressPolicy {
  private readonly rules: Rule[];

  constructor(
    options: { allow?: readonly string[]; deny?: readonly string[] } = {},
    private readonly resolveName: Lookup = systemLookup,
  ) {
    const rule = (cidr: string, allow: boolean, setting: string | null, label: string | null): Rule => {
      const range = parseCidr(cidr);
      return { cidr: `${range[0].toString()}/${range[1]}`, kind: range[0].kind(), range, allow, setting, label };
    };
    this.rules = [
      ...(options.deny ?? []).map((cidr) => rule(cidr, false, DENY_SETTING, null)),
      ...(options.allow ?? []).map((cidr) => rule(cidr, true, ALLOW_SETTING, null)),
      ...BUILT_IN.map(([cidr, label]) => rule(cidr, false, null, label)),
    ];
    // Longest prefix first; the sort is stable, so at equal length the order above (deny, allow, built-in) holds.
    this.rules.sort((a, b) => b.range[1] - a.range[1]);
  }

  /**
   * Checks what can be checked without DNS: `HOST:PORT` or `[IPv6]:PORT` with
   * a port from 1 to 65535, and an IP address (any spelling the resolver would
   * take: 2130706433 and 0x7f.1 are 127.0.0.1) in no refused range. A DNS name
   * passes (it is checked when resolved); `localhost` is loopback by definition.
   */
  checkAddress(address: string): Endpoint {
    const split = address.lastIndexOf(":");
    if (split <= 0) throw new AddressRefused(`"${address}" is not HOST:PORT`);
    const host = address.slice(0, split);
    const bracketed = /^\[(.*)\]$/.exec(host);
    if (bracketed && !ipaddr.IPv6.isValid(bracketed[1]!)) throw new AddressRefused(`"${host}" is not an IPv6 address`);
    return this.check(bracketed ? bracketed[1]! : host, Number(address.slice(split + 1)));
  }

  /** Checks a host (IP address or DNS name) and port, as checkAddress does. */
  check(host: string, port: number): Endpoint {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new AddressRefused(`${String(port)} is not a port an agent can listen on (1 to 65535)`);
    }
    const literal = this.literal(host);
    if (literal) this.checkIp(literal);
    else if (!DNS_NAME.test(host)) throw new AddressRefused(`"${host}" is neither an IP address nor a DNS name`);
    return { host: literal?.toString() ?? host, port };
  }

  /**
   * Resolves the endpoint's name (an IP address stands for itself) and checks
   * every address it resolves to: one refused address refuses the name, so a
   * name cannot smuggle a refused address in beside an allowed one. Returns
   * the first address, which the caller must connect to.
   */
  async resolve(endpoint: Endpoint): Promise<CheckedTarget> {
    const { host, port } = this.check(endpoint.host, endpoint.port);
    const literal = this.literal(host);
    const answers = literal ? [literal] : (await this.resolveName(host)).map((answer) => ipaddr.parse(answer.address));
    if (answers.length === 0) throw Object.assign(new Error(`${host} resolves to no address`), { code: "ENOTFOUND" });
    for (const ip of answers) this.checkIp(ip, host);
    const first = unwrap(answers[0]!);
    return { ip: first.toString(), family: first.kind() === "ipv4" ? 4 : 6, port };
  }

  private literal(host: string): Ip | null {
    if (/^localhost\.?$/i.test(host) || /\.localhost\.?$/i.test(host)) return ipaddr.parse("127.0.0.1");
    if (ipaddr.IPv6.isValid(host)) return ipaddr.IPv6.parse(host);
    // The resolver reads any IPv4 spelling (decimal, octal, hex, short forms) as an address, so we do too.
    return ipaddr.IPv4.isValid(host) ? ipaddr.IPv4.parse(host) : null;
  }

  private checkIp(raw: Ip, name?: string): void {
    const ip = unwrap(raw);
    const rule = this.rules.find((candidate) => candidate.kind === ip.kind() && ip.match(candidate.range));
    if (!rule || rule.allow) return;
    const what = name ? `${name} (${ip.toString()})` : ip.toString();
    if (rule.setting) throw new AddressRefused(`${what} is in ${rule.cidr}, which ${rule.setting} refuses`);
    throw new AddressRefused(
      `${what} is in ${rule.cidr} (${rule.label}), which the control plane does not connect to; ` +
        `to allow it (an agent on this machine, a test setup), set ${ALLOW_SETTING}=${rule.cidr}`,
    );
  }
}
