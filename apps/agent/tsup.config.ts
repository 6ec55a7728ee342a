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
  // ws loads the optional native add-ons bufferutil and utf-8-validate when present; an executable can
  // require only built-ins (and warns at every start when asked for more), so those branches are compiled out.
  define: { "process.env.WS_NO_BUFFER_UTIL": '"1"', "process.env.WS_NO_UTF_8_VALIDATE": '"1"' },
});
