import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
import projects from "./vitest.workspace.js";

export default defineConfig({
  test: {
    projects,
    // The suites wait on sockets, child processes and timers more than they compute: vitest's default of one
    // file per core but one would run them one at a time on a 2-core machine (CI's), twice as long.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
