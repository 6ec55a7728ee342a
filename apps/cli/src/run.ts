import { CommanderError } from "commander";
import { EXIT, describeFailure } from "./exit.js";
import { buildProgram } from "./program.js";
import type { Io } from "./session.js";

/** Runs one command line and returns its exit code; prints at most one error line. */
export async function run(argv: string[], io: Io): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: "user" });
    return EXIT.ok;
  } catch (error) {
    // Commander has already printed its message (or the help / version asked for).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const { line, exitCode } = describeFailure(error, io.signal.aborted);
    io.stderr.write(`error: ${line}\n`);
    return exitCode;
  }
}
