import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The fault suite (pnpm test:faults): real control-plane and agent processes
 * against their own PostgreSQL + Redis, with stores and processes killed under
 * them. Not part of pnpm test: its files end in .fault.ts, which the
 * control-plane project does not include.
 */
export default defineConfig({
  test: {
    name: "faults",
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["**/*.fault.ts"],
    globalSetup: ["./global-setup.ts"],
    // One scenario at a time: they kill shared stores, and the machine is small.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
