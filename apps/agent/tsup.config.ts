import { defineConfig } from "tsup";

/**
 * One CommonJS file holding the agent and every dependency (Node single
 * executable applications run a CommonJS script and can require only built-ins).
 * scripts/build-sea.ts then turns it into dist/muster-agent.
 */
export default defineConfig({
  entry: { "muster-agent": "src/main.ts" },
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
