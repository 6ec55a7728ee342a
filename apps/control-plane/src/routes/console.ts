import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import type { Hono } from "hono";
import type { AppEnv } from "../http/env.js";
import { errorResponse } from "../http/errors.js";
import { ASSET_POLICY, contentSecurityPolicy, setPageHeaders } from "../http/page-headers.js";
import { AssetSet, readDirectory, serveAsset } from "../http/static-assets.js";

/** The console is one script and one stylesheet of its own, and talks to this origin's API only. */
const CONSOLE_POLICY = contentSecurityPolicy({
  "default-src": ["'none'"],
  "script-src": ["'self'"],
  "style-src": ["'self'"],
  "img-src": ["'self'", "data:"],
  "connect-src": ["'self'"],
  "manifest-src": ["'self'"],
  "base-uri": ["'none'"],
  "form-action": ["'none'"],
  "frame-ancestors": ["'none'"],
});

const PREFIX = "/console/";

/** The built console of the workspace (apps/console/dist); `pnpm build` makes it. */
export function builtConsoleDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve("@muster/console/package.json")), "dist");
}

/**
 * The operator console at /console: static files built by apps/console (hashed
 * names under assets/ are kept by browsers for good), and its index.html for
 * every other path, which the console's router reads.
 */
export function consoleRoutes(app: Hono<AppEnv>, consoleDir: () => string): void {
  const files = new AssetSet(() => readDirectory(consoleDir(), "assets"));

  app.get("/console/*", async (c) => {
    const name = c.req.path.startsWith(PREFIX) ? c.req.path.slice(PREFIX.length) : "";
    let asset;
    try {
      asset = name === "" ? undefined : await files.get(name);
      // A path that names a file (it has an extension) and is not one is a 404, not the page.
      if (!asset && extname(name) === "") asset = await files.get("index.html");
    } catch {
      return errorResponse(c, "not_found", "the console is not built: run 'pnpm build'");
    }
    if (!asset) return errorResponse(c, "not_found", `no such file: ${c.req.path}`);
    setPageHeaders(c, asset.type.startsWith("text/html") ? CONSOLE_POLICY : ASSET_POLICY);
    return serveAsset(c, asset);
  });
}
