import { describe, expect, it } from "vitest";
import { runSoak } from "../bench/soak-runner.js";

/**
 * The agent's steady-state memory, measured the way `pnpm bench:agent-soak`
 * measures it (the same runner, the real executable, /proc), compressed to
 * under a minute: heartbeats every second over the channel, a ping every two
 * seconds, a credential refresh on command. Every sample from 20 s on must be
 * within the bound docs/agent.md promises. A leak too slow to show here is
 * the soak's to find.
 */
const BOUND_MIB = 50;

describe("the agent's memory", () => {
  it(`stays at or under ${BOUND_MIB} MiB resident while it beats, runs commands and refreshes`, async () => {
    const result = await runSoak({ seconds: 45, sampleEveryS: 5, commandEveryS: 2, hostTokenTtlS: 3600, refreshCommandsAtS: [10] });
    const steady = result.samples.filter((sample) => sample.atS >= 20);
    expect(steady.length).toBeGreaterThanOrEqual(4);
    expect(result.refreshes).toBe(1);
    expect(result.failedCommands).toBe(0);
    expect(result.exitCode).toBe(0);
    for (const sample of steady) expect(sample.rssMiB, `resident memory at ${sample.atS.toFixed(0)} s`).toBeLessThanOrEqual(BOUND_MIB);
  }, 120_000);
});
