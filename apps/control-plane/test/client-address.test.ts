import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { clientAddress } from "../src/http/client-address.js";

/** What clientAddress makes of a request from `peer` carrying `forwardedFor`, behind `trusted` proxies. */
async function seen(peer: string, forwardedFor: string | undefined, trusted: string[]): Promise<string | null> {
  const app = new Hono();
  app.get("/", (c) => c.text(clientAddress(c, trusted) ?? "none"));
  const headers = forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor };
  const res = await app.request("/", {}, { incoming: { socket: { remoteAddress: peer }, headers } });
  const text = await res.text();
  return text === "none" ? null : text;
}

describe("client address", () => {
  it("is the socket's peer, and X-Forwarded-For is ignored when no proxy is trusted", async () => {
    expect(await seen("203.0.113.9", "198.51.100.1", [])).toBe("203.0.113.9");
    expect(await seen("::ffff:203.0.113.9", undefined, [])).toBe("203.0.113.9");
  });

  it("behind trusted proxies, is the rightmost forwarded address that is not one of them", async () => {
    const trusted = ["10.0.0.0/8", "192.0.2.1"];
    expect(await seen("10.1.1.1", "198.51.100.1, 192.0.2.1", trusted)).toBe("198.51.100.1");
    // The leftmost entry is the client's own claim: only believed when every hop after it is trusted.
    expect(await seen("10.1.1.1", "1.1.1.1, 198.51.100.1", trusted)).toBe("198.51.100.1");
    expect(await seen("10.1.1.1", "garbage, 10.2.2.2", trusted)).toBe("10.2.2.2");
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    expect(await seen("203.0.113.9", "198.51.100.1", ["10.0.0.0/8"])).toBe("203.0.113.9");
  });

  it("is null when there is no socket", async () => {
    const app = new Hono();
    app.get("/", (c) => c.text(String(clientAddress(c, []))));
    expect(await (await app.request("/")).text()).toBe("null");
  });
});
