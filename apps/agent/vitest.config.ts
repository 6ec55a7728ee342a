import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "agent",
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    // The end-to-end test may build the executable first.
    hookTimeout: 180_000,
  },
});
