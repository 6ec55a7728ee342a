import { defineConfig } from "tsup";

/*
 * The published build: ESM and CJS with declarations. `@muster/contract` is a
 * private workspace package shipped as TypeScript source, so its code and
 * types are bundled in; TypeBox stays a real dependency. Two entries: the
 * whole SDK, and `client`, which imports no Node built-in (for browsers).
 */
export default defineConfig({
  entry: { index: "src/index.ts", client: "src/client/index.ts" },
  format: ["esm", "cjs"],
  platform: "neutral",
  target: "es2022",
  outDir: "dist",
  clean: true,
  sourcemap: true,
  // Resolved through `paths`, so the declaration bundler inlines the contract's types instead of importing them.
  dts: { compilerOptions: { paths: { "@muster/contract": ["../contract/src/index.ts"] } } },
  noExternal: ["@muster/contract"],
});
