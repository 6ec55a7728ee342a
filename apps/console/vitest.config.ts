import { defineProject } from "vitest/config";

/** The console's logic, in Node; what it renders is the browser suite's (test/browser, pnpm test:browser). */
export default defineProject({
  test: {
    name: "console",
    include: ["test/**/*.test.ts"],
  },
});
