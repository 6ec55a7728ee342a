import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/*
 * V8 grows its young generation when much of what it allocates survives (from
 * 1 MiB, doubling, up to 32 MiB) and never gives it back. Starting (loading the
 * modules, the embedded database, migrations) and bursts such as a fleet
 * reconnecting are enough to grow it to the maximum, which a control plane
 * then holds idle. 8 MiB (what `node --max-semi-space-size=4` allows) costs the
 * heartbeat lane no measurable CPU; 2 MiB cost it 30 %; 32 MiB cost ~25 MiB
 * of resident memory (docs/benchmarks.md). Node takes that flag only on its
 * command line, so the same is done at run time: main.ts imports this module
 * first, which keeps the young generation at its initial size while the
 * control plane starts; once it serves, it may grow up to the cap.
 */
const YOUNG_GENERATION_CAP_BYTES = 8 * 2 ** 20;

setFlagsFromString("--semi-space-growth-factor=1");

/** Lets the young generation grow as the load asks (V8's default doubling), up to the cap. */
export function releaseYoungGeneration(): void {
  setFlagsFromString("--semi-space-growth-factor=2");
  // V8 grows it at the end of a collection: after each one, check whether it reached the cap.
  const observer = new PerformanceObserver(() => {
    const young = getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
    if (!young || young.space_size < YOUNG_GENERATION_CAP_BYTES) return;
    setFlagsFromString("--semi-space-growth-factor=1");
    observer.disconnect();
  });
  observer.observe({ entryTypes: ["gc"] });
}
