import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import type { Context } from "hono";
import { header } from "./node-request.js";

const gzipAsync = promisify(gzip);

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".json", ".svg", ".txt"]);

/** A file as it is served: its bytes (and gzip of them when that pays), type, validator and cache policy. */
export interface Asset {
  body: Buffer;
  gzipped: Buffer | null;
  type: string;
  etag: string;
  /** Its name holds a version or content hash: browsers may keep it for a year without asking again. */
  immutable: boolean;
}

export interface AssetSource {
  /** The path it is served at, relative to the set's mount point, without a leading slash. */
  name: string;
  body: Buffer;
  immutable: boolean;
}

export async function toAsset(source: AssetSource): Promise<Asset> {
  const extension = extname(source.name);
  const etag = `"${createHash("sha256").update(source.body).digest("base64url").slice(0, 22)}"`;
  let gzipped: Buffer | null = null;
  if (COMPRESSIBLE.has(extension) && source.body.length > 1024) {
    const packed = await gzipAsync(source.body, { level: 9 });
    if (packed.length < source.body.length) gzipped = packed;
  }
  return { body: source.body, gzipped, type: TYPES[extension] ?? "application/octet-stream", etag, immutable: source.immutable };
}

/**
 * A fixed set of files served from memory. The set is read on first use, not
 * when the app is built (tests and the API never pay for it), and only the
 * names it holds can be served: no request path reaches the file system.
 */
export class AssetSet {
  private loaded: Promise<Map<string, Asset>> | undefined;

  constructor(private readonly read: () => Promise<AssetSource[]>) {}

  async get(name: string): Promise<Asset | undefined> {
    if (!this.loaded) {
      const loading = this.read()
        .then((sources) => Promise.all(sources.map(async (source) => [source.name, await toAsset(source)] as const)))
        .then((entries) => new Map(entries));
      // A failed read (the console not built yet) is tried again on the next request rather than remembered.
      loading.catch(() => {
        if (this.loaded === loading) this.loaded = undefined;
      });
      this.loaded = loading;
    }
    return (await this.loaded).get(name);
  }
}

/** Every file below `dir`, named by its path relative to it; those under `immutableDir` carry content hashes in their names. */
export async function readDirectory(dir: string, immutableDir: string): Promise<AssetSource[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((entry) => entry.isFile() && !entry.name.endsWith(".map"));
  return Promise.all(
    files.map(async (entry) => {
      const path = join(entry.parentPath, entry.name);
      const name = relative(dir, path).split(sep).join("/");
      return { name, body: await readFile(path), immutable: name.startsWith(`${immutableDir}/`) };
    }),
  );
}

/** Answers with the asset: 304 when the client's copy is current, gzip when the client takes it. */
export function serveAsset(c: Context, asset: Asset): Response {
  c.header("ETag", asset.etag);
  c.header("Cache-Control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  c.header("Vary", "Accept-Encoding");
  const known = header(c, "if-none-match");
  if (known !== undefined && known.split(",").some((tag) => tag.trim().replace(/^W\//, "") === asset.etag)) return c.body(null, 304);
  c.header("Content-Type", asset.type);
  const acceptsGzip = /\bgzip\b/i.test(header(c, "accept-encoding") ?? "");
  if (asset.gzipped && acceptsGzip) {
    c.header("Content-Encoding", "gzip");
    return c.body(new Uint8Array(asset.gzipped), 200);
  }
  return c.body(new Uint8Array(asset.body), 200);
}
