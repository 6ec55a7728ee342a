import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf } from "./types.js";

/** `client.webhooks`: events POSTed to a URL, signed with `Muster-Signature` (check it with verifyWebhookSignature). */
export class Webhooks {
  constructor(private readonly transport: Transport) {}

  /** Creates a webhook; the response's `secret` (given or generated) is shown this once. */
  create(body: BodyOf<typeof routes.createWebhook>, options?: RequestOptions) {
    return this.transport.call(routes.createWebhook, { body }, options);
  }

  list(filters?: ListFilters<typeof routes.listWebhooks>, options?: RequestOptions) {
    return paginate(this.transport, routes.listWebhooks, filters, options);
  }

  delete(webhookId: string, options?: RequestOptions) {
    return this.transport.call(routes.deleteWebhook, { params: { id: webhookId } }, options);
  }

  /** The webhook's deliveries, newest first, each with every attempt. */
  deliveries(webhookId: string, filters?: ListFilters<typeof routes.listWebhookDeliveries>, options?: RequestOptions) {
    return paginate(this.transport, routes.listWebhookDeliveries, filters, options, { id: webhookId });
  }
}

export interface VerifyOptions {
  /** How far the signature's time may be from now, in seconds (default 300), so an old delivery cannot be replayed. */
  toleranceS?: number;
  /** Now, in seconds since the epoch (tests). */
  nowS?: number;
}

const DEFAULT_TOLERANCE_S = 300;
const encoder = new TextEncoder();

/**
 * Checks a webhook delivery's `Muster-Signature` header
 * (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, Stripe's scheme)
 * against the webhook's secret. `body` must be the raw request body, as
 * received, before any JSON parsing. True only when a v1 signature matches
 * and `t` is within the tolerance of now. Uses Web Crypto, so it runs in
 * Node 20, browsers and edge runtimes.
 */
export async function verifyWebhookSignature(
  body: string | Uint8Array,
  header: string | null | undefined,
  secret: string,
  options: VerifyOptions = {},
): Promise<boolean> {
  if (!header || !secret) return false;
  let timestamp: string | null = null;
  const signatures: string[] = [];
  for (const part of header.split(",")) {
    const split = part.indexOf("=");
    if (split < 0) continue;
    const [name, value] = [part.slice(0, split).trim(), part.slice(split + 1).trim()];
    if (name === "t") timestamp = value;
    else if (name === "v1") signatures.push(value.toLowerCase());
  }
  if (timestamp === null || !/^\d{1,12}$/.test(timestamp) || signatures.length === 0) return false;
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > (options.toleranceS ?? DEFAULT_TOLERANCE_S)) return false;
  const expected = await signWebhookPayload(secret, timestamp, body);
  return signatures.some((signature) => sameText(signature, expected));
}

/** Hex HMAC-SHA256 of `<timestamp>.<body>` under the secret: the v1 signature. */
export async function signWebhookPayload(secret: string, timestamp: string, body: string | Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const signed = new Uint8Array(timestamp.length + 1 + bytes.length);
  signed.set(encoder.encode(`${timestamp}.`));
  signed.set(bytes, timestamp.length + 1);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  return Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Compares in time independent of where the texts differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}
