import { gzipSync } from "node:zlib";
import { defineConfig, type Plugin, type Rolldown } from "vite";

type OutputBundle = Rolldown.OutputBundle;
type OutputChunk = Rolldown.OutputChunk;

/** The budget: what a first visit downloads, gzipped. */
export const FIRST_LOAD_BUDGET_BYTES = 200 * 1024;

/** The entry chunk and every chunk it imports statically: what a first visit must download before the console runs. */
function firstLoad(bundle: OutputBundle): OutputChunk[] {
  const chunks = Object.values(bundle).filter((item): item is OutputChunk => item.type === "chunk");
  const byName = new Map(chunks.map((chunk) => [chunk.fileName, chunk]));
  const loaded = new Set<OutputChunk>();
  const visit = (chunk: OutputChunk | undefined) => {
    if (!chunk || loaded.has(chunk)) return;
    loaded.add(chunk);
    chunk.imports.forEach((name) => visit(byName.get(name)));
  };
  chunks.filter((chunk) => chunk.isEntry).forEach(visit);
  return [...loaded];
}

/** Fails the build when the first load's JavaScript, gzipped, passes the budget; prints the figure either way. */
function firstLoadBudget(): Plugin {
  return {
    name: "muster-first-load-budget",
    apply: "build",
    generateBundle(_, bundle) {
      const bytes = firstLoad(bundle).reduce((sum, chunk) => sum + gzipSync(chunk.code, { level: 9 }).length, 0);
      const line = `console: first load ${(bytes / 1024).toFixed(1)} KB of JavaScript gzipped (budget ${FIRST_LOAD_BUDGET_BYTES / 1024} KB)`;
      if (bytes > FIRST_LOAD_BUDGET_BYTES) this.error(line);
      this.info(line);
    },
  };
}

export default defineConfig({
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, sourcemap: false, reportCompressedSize: false },
  plugins: [firstLoadBudget()],
});
