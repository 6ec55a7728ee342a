import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The browser suite (pnpm test:browser): Debian's Chromium, driven by
 * playwright-core, against a real control plane process and the real
 * muster-agent executable. Not part of pnpm test (it needs Chromium and the
 * built console and agent): its files end in .browser.ts, which the console's
 * unit-test project does not include.
 */
export default defineConfig({
  test: {
    name: "browser",
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["**/*.browser.ts"],
    // One browser and one control plane at a time: the machine is small.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
