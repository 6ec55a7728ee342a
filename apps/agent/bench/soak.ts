/**
 * `pnpm bench:agent-soak`: the real executable for SOAK_MINUTES (30), beating
 * every second over its channel, a ping every SOAK_COMMAND_EVERY_S (5), its
 * credentials refreshed every ~SOAK_TOKEN_TTL_S × 0.8 (120 s × 0.8) and by a
 * command every ten minutes. Prints its memory every minute, as it is and
 * right after a full collection (forced through Node's inspector), then the
 * slopes from the second minute on. Exits 1 on a leak (a slope of what it
 * retains, resident memory or live JS heap after the collection, at or over
 * SOAK_LEAK_MIB_PER_HOUR, 1 by default), a failed command or an unclean stop.
 * Without the collection the slope measures when V8 next collects, not what
 * the agent keeps: its heap is small enough that garbage waits hours for a
 * full collection (docs/benchmarks.md).
 */
import { cpus } from "node:os";
import { runSoak, slopePerHour, type Sample } from "./soak-runner.js";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const COMMAND_EVERY_S = Number(process.env.SOAK_COMMAND_EVERY_S ?? 5);
const TOKEN_TTL_S = Number(process.env.SOAK_TOKEN_TTL_S ?? 120);
const LEAK_MIB_PER_HOUR = Number(process.env.SOAK_LEAK_MIB_PER_HOUR ?? 1);
/** The first minute is start-up: the slopes are taken from here on. */
const WARM_UP_S = 90;

const say = (line: string) => process.stdout.write(`${line}\n`);
const mib = (value: number | null) => (value === null ? "-" : value.toFixed(1)).padStart(7);

say(`muster-agent soak: ${MINUTES} min, heartbeats every 1 s over the channel, a ping every ${COMMAND_EVERY_S} s, host tokens of ${TOKEN_TTL_S} s`);
say(`${process.platform}-${process.arch}, node ${process.version}, ${cpus().length} × ${cpus()[0]?.model.trim()}`);
say("   min     RSS    anon    file    heap   cpu s  gc RSS gc heap");
say("   (MiB; file: the executable's mapped pages; gc: right after a full collection, the heap then live)");

const result = await runSoak({
  seconds: MINUTES * 60 + 1,
  sampleEveryS: 60,
  commandEveryS: COMMAND_EVERY_S,
  hostTokenTtlS: TOKEN_TTL_S,
  refreshCommandsAtS: Array.from({ length: Math.floor(MINUTES / 10) }, (_, i) => (i + 1) * 600 - 30),
  collectGarbage: true,
  onSample: (sample) =>
    say(
      `${String(Math.round(sample.atS / 60)).padStart(6)} ${mib(sample.rssMiB)} ${mib(sample.anonMiB)} ${mib(sample.fileMiB)} ${mib(sample.heapMiB)} ` +
        `${sample.cpuS.toFixed(1).padStart(7)} ${mib(sample.rssAfterGcMiB)} ${mib(sample.liveHeapMiB)}`,
    ),
});

const steady = result.samples.filter((sample) => sample.atS >= WARM_UP_S);
const slope = (value: (sample: Sample) => number | null) => slopePerHour(steady, value);
const rssSlope = slope((sample) => sample.rssAfterGcMiB);
const heapSlope = slope((sample) => sample.liveHeapMiB);
const rssAsIsSlope = slope((sample) => sample.rssMiB);
const heapAsIsSlope = slope((sample) => sample.heapMiB);
const last = result.samples.at(-1);
const format = (value: number | null) => (value === null ? "-" : `${value >= 0 ? "+" : ""}${value.toFixed(2)} MiB/hour`);
say("");
say(`  after a full collection, from minute 2:`);
say(`    resident memory slope                 ${format(rssSlope)}`);
say(`    live JS heap slope                    ${format(heapSlope)}`);
say(`  as it is (garbage included), from minute 2:`);
say(`    resident memory slope                 ${format(rssAsIsSlope)}`);
say(`    JS heap slope                         ${format(heapAsIsSlope)}`);
say(`  resident memory, largest after minute 1 ${Math.max(...steady.map((sample) => sample.rssMiB)).toFixed(1)} MiB`);
say(`  CPU                                     ${last ? ((last.cpuS / last.atS) * 100).toFixed(2) : "-"} % of one core`);
say(`  pings ${result.pings}, credential refreshes ${result.refreshes}, failed commands ${result.failedCommands}, exit status ${result.exitCode}`);

const leaking = [rssSlope, heapSlope].some((value) => value !== null && value >= LEAK_MIB_PER_HOUR);
if (leaking) say(`LEAK: a slope at or over ${LEAK_MIB_PER_HOUR} MiB/hour`);
if (leaking || result.failedCommands > 0 || result.exitCode !== 0) process.exitCode = 1;
