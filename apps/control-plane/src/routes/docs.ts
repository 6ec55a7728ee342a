import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Hono } from "hono";
import type { AppEnv } from "../http/env.js";
import { errorResponse } from "../http/errors.js";
import { ASSET_POLICY, contentSecurityPolicy, setPageHeaders } from "../http/page-headers.js";
import { AssetSet, serveAsset } from "../http/static-assets.js";

/**
 * The API reference at /docs: Scalar's standalone bundle from the installed
 * @scalar/api-reference (pinned in package.json), served by the control plane
 * itself, so the page needs no network beyond it. Everything Scalar would
 * reach out for on its own (its fonts, telemetry, the AI agent) is off.
 */
const SCALAR_CONFIGURATION = {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  hideClientButton: true,
  showDeveloperTools: "never",
  documentDownloadType: "json",
  defaultOpenAllTags: true,
};

const INIT_SCRIPT = `Scalar.createApiReference("#app", ${JSON.stringify(SCALAR_CONFIGURATION)});\n`;

const require = createRequire(import.meta.url);

async function readScalar() {
  // The package's exports name no file of dist/browser, so the bundle is found from its main entry.
  const dist = dirname(require.resolve("@scalar/api-reference"));
  return [
    { name: "api-reference.js", body: await readFile(join(dist, "browser", "standalone.js")), immutable: false },
    { name: "init.js", body: Buffer.from(INIT_SCRIPT), immutable: false },
  ];
}

/**
 * Two style sheets Scalar 1.76.0 inserts without its nonce (vue-sonner's
 * toasts and its theme layer), allowed by their hashes. A Scalar version that
 * changes them fails the browser suite with a CSP violation naming the new hash.
 */
const SCALAR_STYLE_HASHES = ["'sha256-l/2OpPg0d+2VLTLgwjf5mQo2CYwHDEqdj5TjbfEyVJI='", "'sha256-T13Uev3xCax2N28XaoAE8DOzQZKvPp7ZQVAi1iRREjo='"];

/**
 * Scalar injects its main stylesheet at run time with the nonce it finds in
 * the page's csp-nonce meta tag; no inline script runs, no other style sheet loads.
 */
function docsPolicy(nonce: string): string {
  return contentSecurityPolicy({
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", `'nonce-${nonce}'`, ...SCALAR_STYLE_HASHES],
    "style-src-elem": ["'self'", `'nonce-${nonce}'`, ...SCALAR_STYLE_HASHES],
    // Scalar's components set style attributes (positions, sizes); an attribute cannot load or run anything.
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
    "frame-ancestors": ["'none'"],
  });
}

function page(nonce: string): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta property="csp-nonce" content="${nonce}">
    <title>Muster API reference</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="/docs/assets/api-reference.js"></script>
    <script src="/docs/assets/init.js"></script>
  </body>
</html>
`;
}

export function docsRoutes(app: Hono<AppEnv>): void {
  const assets = new AssetSet(readScalar);

  app.get("/docs", (c) => {
    const nonce = randomBytes(16).toString("base64");
    setPageHeaders(c, docsPolicy(nonce));
    c.header("Cache-Control", "no-store");
    return c.html(page(nonce));
  });

  app.get("/docs/assets/:name", async (c) => {
    setPageHeaders(c, ASSET_POLICY);
    const asset = await assets.get(c.req.param("name"));
    if (!asset) return errorResponse(c, "not_found", `no such file: ${c.req.path}`);
    return serveAsset(c, asset);
  });
}
