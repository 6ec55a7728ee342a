import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/main.ts"],
  format: ["esm"],
  platform: "node",
  target: "node20",
  outDir: "dist",
  clean: true,
  sourcemap: true,
  // The workspace contract ships as TypeScript source, so it is bundled in; npm dependencies stay external.
  noExternal: ["@muster/contract"],
});
