#!/usr/bin/env node
import pkg from "../package.json" with { type: "json" };
import { EXIT } from "./exit.js";
import { run } from "./run.js";

// Ctrl-C cancels what is in flight (an API call, a --wait) so the CLI can clean up; a second one quits at once.
const interrupt = new AbortController();
process.on("SIGINT", () => {
  if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
  interrupt.abort(new Error("interrupted"));
});
// `muster hosts list | head`: a closed pipe is the reader's choice, not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(EXIT.ok);
  throw error;
});

// No top-level await: the bundle is CommonJS, which a single executable needs.
void run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: interrupt.signal,
  version: pkg.version,
}).then((code) => {
  process.exitCode = code;
});
