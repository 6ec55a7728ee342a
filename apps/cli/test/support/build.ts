import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

/*
 * Builds the CLI's bundle once per test run, with the package's own tsup
 * config, so the tests need no prior build and run the script the executable
 * is made of: a bundle starts in a fraction of the time tsx needs, which
 * matters with dozens of subprocesses. (The executable itself is tested in
 * executable.test.ts.)
 */
declare module "vitest" {
  export interface ProvidedContext {
    cliBin: string;
  }
}

const PACKAGE = fileURLToPath(new URL("../..", import.meta.url));

export default async function setup(project: TestProject) {
  const tsup = join(createRequire(import.meta.url).resolve("tsup/package.json"), "..", "dist", "cli-default.js");
  const out = mkdtempSync(join(PACKAGE, "node_modules", ".cli-test-"));
  await promisify(execFile)(process.execPath, [tsup, "--out-dir", out, "--silent"], { cwd: PACKAGE });
  project.provide("cliBin", join(out, "muster.cjs"));
  return () => rmSync(out, { recursive: true, force: true });
}
