import { defineConfig } from "tsup";

/**
 * One CommonJS file holding the CLI and every dependency: what `pnpm muster`
 * runs with Node, and what ../../scripts/build-sea.ts turns into dist/muster
 * (a single executable runs one CommonJS script that can require built-ins only).
 */
export default defineConfig({
  entry: { muster: "src/main.ts" },
  format: ["cjs"],
  platform: "node",
  target: "node20",
  outDir: "dist",
  outExtension: () => ({ js: ".cjs" }),
  clean: true,
  splitting: false,
  sourcemap: false,
  minify: true,
  noExternal: [/.*/],
});
