import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Builds the published package (tsup.config.ts) into a scratch folder and
 * uses it the way an npm consumer would: ESM import, CJS require, and the
 * TypeScript declarations on their own. The folder sits under the package's
 * node_modules so the build can resolve TypeBox, its one runtime dependency.
 */
const PACKAGE = fileURLToPath(new URL("..", import.meta.url));
const TSUP = join(createRequire(import.meta.url).resolve("tsup/package.json"), "..", "dist", "cli-default.js");
let out: string;

beforeAll(async () => {
  out = mkdtempSync(join(PACKAGE, "node_modules", ".build-test-"));
  await promisify(execFile)(process.execPath, [TSUP, "--out-dir", out, "--silent"], { cwd: PACKAGE });
}, 120_000);
afterAll(() => out && rmSync(out, { recursive: true, force: true }));

/** What the client entry may import: packages of plain JavaScript that run in browsers (schemas; the event stream's parser). */
const BROWSER_SAFE = /^(@sinclair\/typebox(\/|$)|eventsource-parser$)/;
/** The package's declared runtime dependencies: TypeBox, and the X.509 library the agent makes its CSRs with. */
const DEPENDENCIES = Object.keys((JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies);
const isDependency = (specifier: string) => DEPENDENCIES.some((name) => specifier === name || specifier.startsWith(`${name}/`));
const read = (file: string) => readFileSync(join(out, file), "utf8");

/** The files an ESM entry loads, following its relative imports (code-split chunks). */
function esmClosure(entry: string, seen = new Set<string>()): string[] {
  if (seen.has(entry)) return [];
  seen.add(entry);
  for (const [, next] of read(entry).matchAll(/from\s*"\.\/([^"]+)"/g)) esmClosure(next!, seen);
  return [...seen];
}

/** Bare specifiers a built file imports or requires. */
function imports(source: string): string[] {
  const specifiers = [...source.matchAll(/(?:from\s*|require\(|import\()\s*"([^".][^"]*)"/g)].map((m) => m[1]!);
  return [...new Set(specifiers)];
}

describe("the published build (tsup)", () => {
  it("emits ESM, CJS and declarations for both entries", () => {
    for (const file of ["index.js", "index.cjs", "index.d.ts", "index.d.cts", "client.js", "client.cjs", "client.d.ts", "client.d.cts"]) {
      expect(existsSync(join(out, file)), file).toBe(true);
    }
  });

  it("works from ESM and from CJS", async () => {
    const esm = await import(pathToFileURL(join(out, "index.js")).href);
    const cjs = createRequire(import.meta.url)(join(out, "index.cjs"));
    for (const sdk of [esm, cjs]) {
      const fetch = async () => new Response(JSON.stringify({ error: { code: "unauthorized", message: "no" } }), { status: 401 });
      const client = new sdk.MusterClient({ baseUrl: "http://muster.test", apiKey: "k", fetch });
      const error = await client.me().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(sdk.MusterApiError);
      expect(error).toMatchObject({ status: 401, code: "unauthorized" });
    }
  });

  it("bundles the private contract in: the package needs only its declared dependencies (and Node's built-ins for the agent)", () => {
    const files = [...esmClosure("index.js"), "index.cjs", "index.d.ts", "index.d.cts", "client.d.ts"];
    for (const file of files) {
      for (const specifier of imports(read(file))) {
        expect(isDependency(specifier) || isBuiltin(specifier), `${file} imports ${specifier}`).toBe(true);
      }
    }
  });

  it("keeps the client entry free of Node built-ins, so browsers can load it", () => {
    for (const file of [...esmClosure("client.js"), "client.cjs"]) {
      for (const specifier of imports(read(file))) expect(specifier, `${file} imports ${specifier}`).toMatch(BROWSER_SAFE);
      expect(read(file), file).not.toMatch(/\bprocess\.|\bBuffer\b/);
    }
  });

  it("ships declarations that type-check a consumer on their own", () => {
    const consumer = join(out, "consumer.ts");
    writeFileSync(
      consumer,
      [
        `import { MusterClient, MusterApiError, type Host } from "./client.js";`,
        `const client = new MusterClient({ baseUrl: "http://x", apiKey: "k" });`,
        `export async function online(): Promise<Host[]> {`,
        `  const { host } = await client.hosts.create({ type: "byoc", tags: ["gpu"] });`,
        `  try { await client.hosts.waitUntilOnline(host.id); } catch (e) { if (e instanceof MusterApiError) e.code satisfies string; }`,
        `  const out: Host[] = [];`,
        `  for await (const h of client.hosts.list({ status: "online" })) out.push(h);`,
        `  return out;`,
        `}`,
        `// @ts-expect-error: the contract knows no such host type`,
        `void client.hosts.create({ type: "vm" });`,
      ].join("\n"),
    );
    const program = ts.createProgram([consumer], {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
      types: [],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(diagnostics).toEqual([]);
  });
});
