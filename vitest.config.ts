import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
import projects from "./vitest.workspace.js";

export default defineConfig({
  test: {
    projects,
    // On the embedded default the suites wait on sockets, child processes and timers more than they compute:
    // two files at a time even on a 2-core machine (vitest's default there is one). On PostgreSQL one at a
    // time: an event is handed out only once every older writing transaction of the whole server has ended
    // (docs/events.md), so files holding transactions open in their own databases would delay each other's events.
    maxWorkers: process.env.DATABASE_URL ? 1 : Math.max(2, availableParallelism() - 1),
  },
});
