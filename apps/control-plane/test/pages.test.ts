import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import type { CallResult } from "./support/http.js";

/*
 * The pages the control plane serves to browsers: the API reference at /docs
 * and the console at /console. What they render is the browser suite's
 * business (apps/console/test/browser); here: what is served, and with which headers.
 */

let t: TestApp;
let consoleDir: string;

const INDEX = '<!doctype html><html><head><script type="module" src="/console/assets/index-abc123.js"></script></head><body></body></html>';
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});`;

beforeAll(async () => {
  consoleDir = await mkdtemp(join(tmpdir(), "muster-console-"));
  await mkdir(join(consoleDir, "assets"));
  await writeFile(join(consoleDir, "index.html"), INDEX);
  await writeFile(join(consoleDir, "assets", "index-abc123.js"), SCRIPT);
  await writeFile(join(consoleDir, "assets", "index-abc123.js.map"), "{}");
  await writeFile(join(consoleDir, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  t = await startTestApp({ config: { consoleDir } });
});
afterAll(async () => {
  await t.close();
  await rm(consoleDir, { recursive: true, force: true });
});

/** A CSP as a map of directive → sources. */
function policy(res: CallResult): Map<string, string[]> {
  const header = res.headers.get("content-security-policy") ?? "";
  return new Map(header.split(";").map((part) => part.trim().split(/\s+/)).map(([name = "", ...sources]) => [name, sources]));
}

function expectPageHeaders(res: CallResult): void {
  expect(res.headers.get("x-frame-options")).toBe("DENY");
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  const csp = policy(res);
  expect(csp.get("default-src")).toEqual(["'none'"]);
  expect(csp.get("frame-ancestors")).toEqual(["'none'"]);
}

/** Every source a policy allows, across its directives: none may be another origin. */
const allSources = (csp: Map<string, string[]>) => [...csp.values()].flat();

describe("/docs", () => {
  it("serves the API reference page with its own scripts only and the strict policy", async () => {
    const res = await t.http.get("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expectPageHeaders(res);
    const html = String(res.body);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([^<]*)<\/script>/g)];
    expect(scripts.map(([, attributes]) => /src="([^"]+)"/.exec(attributes!)?.[1])).toEqual(["/docs/assets/api-reference.js", "/docs/assets/init.js"]);
    expect(scripts.every(([, , body]) => body!.trim() === "")).toBe(true);
    expect(html).not.toMatch(/https?:\/\//);

    const csp = policy(res);
    expect(csp.get("script-src")).toEqual(["'self'"]);
    expect(csp.get("connect-src")).toEqual(["'self'"]);
    const nonce = /<meta property="csp-nonce" content="([^"]+)">/.exec(html)?.[1];
    for (const directive of ["style-src", "style-src-elem"]) {
      const [self, ownNonce, ...hashes] = csp.get(directive)!;
      expect([self, ownNonce], directive).toEqual(["'self'", `'nonce-${nonce}'`]);
      for (const hash of hashes) expect(hash).toMatch(/^'sha256-[A-Za-z0-9+/]{43}='$/);
    }
    // Style attributes (positions, sizes) are all that is inline beyond the nonce and the hashes: they cannot load or run anything.
    expect(csp.get("style-src-attr")).toEqual(["'unsafe-inline'"]);
    csp.delete("style-src-attr");
    expect(allSources(csp).filter((source) => /^https?:|^\*|unsafe/.test(source))).toEqual([]);
  });

  it("gives every page its own nonce and forbids caching the page", async () => {
    const [a, b] = [await t.http.get("/docs"), await t.http.get("/docs")];
    expect(policy(a).get("style-src")).not.toEqual(policy(b).get("style-src"));
    expect(a.headers.get("cache-control")).toBe("no-store");
  });

  it("serves Scalar's bundle from the installed package and the script that starts it on /openapi.json", async () => {
    const bundle = await t.http.get("/docs/assets/api-reference.js");
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(bundle.headers.get("x-content-type-options")).toBe("nosniff");
    expect(String(bundle.body)).toContain("createApiReference");

    const init = await t.http.get("/docs/assets/init.js");
    const configuration = JSON.parse(/createApiReference\("#app", (.*)\);/.exec(String(init.body))![1]!);
    expect(configuration).toMatchObject({ url: "/openapi.json", withDefaultFonts: false, telemetry: false, agent: { disabled: true } });
  });

  it("gzips the bundle for clients that take it, and answers a current copy with 304", async () => {
    const plain = await t.http.get("/docs/assets/api-reference.js");
    const zipped = await t.runtime.app.request("/docs/assets/api-reference.js", { headers: { "accept-encoding": "gzip, br" } });
    expect(zipped.headers.get("content-encoding")).toBe("gzip");
    const bytes = Buffer.from(await zipped.arrayBuffer());
    expect(bytes.length).toBeLessThan(String(plain.body).length / 2);
    expect(gunzipSync(bytes).toString("utf8")).toBe(String(plain.body));

    const etag = plain.headers.get("etag")!;
    const again = await t.http.get("/docs/assets/api-reference.js", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.body).toBeUndefined();
  });

  it("answers an unknown asset with the 404 envelope", async () => {
    for (const path of ["/docs/assets/nope.js", "/docs/assets/..%2Fpackage.json", "/docs/assets/standalone.js.map"]) {
      const res = await t.http.get(path);
      expect(res.status, path).toBe(404);
      expect(res.body).toEqual({ error: { code: "not_found", message: expect.any(String) } });
    }
  });
});

describe("/console", () => {
  it("serves the console's page at /console and at every path below it that is not a file, under the strict policy", async () => {
    for (const path of ["/console", "/console/", "/console/hosts", "/console/hosts/host-abc"]) {
      const res = await t.http.get(path);
      expect(res.status, path).toBe(200);
      expect(String(res.body)).toBe(INDEX);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expectPageHeaders(res);
      const csp = policy(res);
      for (const directive of ["script-src", "style-src", "connect-src"]) expect(csp.get(directive), directive).toEqual(["'self'"]);
      expect(allSources(csp).filter((source) => /^https?:|^\*|unsafe|nonce|sha256/.test(source))).toEqual([]);
    }
  });

  it("lets browsers keep hashed assets for good, and answers a current copy with 304", async () => {
    const res = await t.http.get("/console/assets/index-abc123.js");
    expect(res.status).toBe(200);
    expect(String(res.body)).toBe(SCRIPT);
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect((await t.http.get("/console/assets/index-abc123.js", { headers: { "if-none-match": res.headers.get("etag")! } })).status).toBe(304);
    expect((await t.http.get("/console/favicon.svg")).headers.get("cache-control")).toBe("no-cache");
  });

  it("answers a missing file, a source map and a path out of the folder with 404, never the page", async () => {
    for (const path of ["/console/assets/missing.js", "/console/assets/index-abc123.js.map", "/console/..%2f..%2fetc%2fpasswd", "/console/%2e%2e/package.json"]) {
      const res = await t.http.get(path);
      expect(res.status, path).toBe(404);
      expect(res.body).toEqual({ error: { code: "not_found", message: expect.any(String) } });
    }
  });

  it("says how to build the console when it is not built", async () => {
    const bare = await startTestApp({ config: { consoleDir: join(consoleDir, "not-there") } });
    try {
      const res = await bare.http.get("/console");
      expect(res.status).toBe(404);
      expect(res.body.error.message).toContain("pnpm build");
    } finally {
      await bare.close();
    }
  });
});
