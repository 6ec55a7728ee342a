import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifyWebhookSignature } from "../src/index.js";

/** Muster-Signature is Stripe's scheme: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">; checked here against node:crypto's HMAC. */
const secret = "whsec_test_0123456789abcdefghijkl";
const body = '{"id":"42","type":"host.online","data":{"id":"host-x","tags":["ü"]}}';
const now = 1_760_000_000;
const sign = (t: number, payload = body, key = secret) => createHmac("sha256", key).update(`${t}.${payload}`).digest("hex");

describe("verifyWebhookSignature", () => {
  it("accepts the signature of the exact body within the tolerance, as a string or as bytes", async () => {
    const header = `t=${now},v1=${sign(now)}`;
    expect(await verifyWebhookSignature(body, header, secret, { nowS: now })).toBe(true);
    expect(await verifyWebhookSignature(new TextEncoder().encode(body), header, secret, { nowS: now + 299 })).toBe(true);
    expect(await verifyWebhookSignature(body, `t=${now}, v1=${sign(now).toUpperCase()}`, secret, { nowS: now })).toBe(true);
  });

  it("accepts any one of several v1 signatures (a secret being rotated)", async () => {
    const header = `t=${now},v1=${sign(now, body, "an-older-secret-of-24-chars!")},v1=${sign(now)}`;
    expect(await verifyWebhookSignature(body, header, secret, { nowS: now })).toBe(true);
  });

  it("refuses a changed body, another secret, a stale or future time, and malformed headers", async () => {
    const header = `t=${now},v1=${sign(now)}`;
    expect(await verifyWebhookSignature(body.replace("online", "offline"), header, secret, { nowS: now })).toBe(false);
    expect(await verifyWebhookSignature(body, header, "another-secret-of-enough-length", { nowS: now })).toBe(false);
    expect(await verifyWebhookSignature(body, header, secret, { nowS: now + 301 })).toBe(false);
    expect(await verifyWebhookSignature(body, header, secret, { nowS: now - 301 })).toBe(false);
    expect(await verifyWebhookSignature(body, header, secret, { nowS: now + 1000, toleranceS: 1000 })).toBe(true);
    for (const bad of [undefined, null, "", "v1=" + sign(now), `t=${now}`, `t=abc,v1=${sign(now)}`, `t=${now},v0=${sign(now)}`, `t=${now},v1=`, "garbage"]) {
      expect(await verifyWebhookSignature(body, bad, secret, { nowS: now }), String(bad)).toBe(false);
    }
    expect(await verifyWebhookSignature(body, header, "", { nowS: now })).toBe(false);
  });

  it("refuses a signature for another time even over the same body (the time is signed)", async () => {
    expect(await verifyWebhookSignature(body, `t=${now + 1},v1=${sign(now)}`, secret, { nowS: now })).toBe(false);
  });
});
