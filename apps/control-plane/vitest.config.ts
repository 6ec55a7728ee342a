import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "control-plane",
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
