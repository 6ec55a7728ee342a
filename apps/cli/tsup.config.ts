import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/main.ts"],
  format: ["esm"],
  platform: "node",
  target: "node20",
  outDir: "dist",
  clean: true,
  sourcemap: true,
  // The SDK and the contract are workspace packages shipped as TypeScript source: bundled in. npm dependencies stay external.
  noExternal: ["@muster/sdk", "@muster/contract"],
});
