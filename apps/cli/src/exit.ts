import { MusterApiError, MusterConnectionError, MusterWaitTimeoutError } from "@muster/sdk";

/** Exit codes scripts can rely on (documented in docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** The API answered with an error (the line names its code), or something unexpected broke. */
  api: 1,
  /** The command line was wrong: unknown command or option, bad value. */
  usage: 2,
  /** No answer from the control plane, or no API key to send it. */
  unreachable: 3,
  /** `--wait` gave up before the host came online, or a command expired. */
  timeout: 4,
  /** `hosts command`: the host ran the command and reported a failure. */
  commandFailed: 5,
  /** Interrupted (Ctrl-C), the shell's convention: 128 + SIGINT. */
  interrupted: 130,
} as const;

/** An error the CLI itself raises, with the exit code it ends in. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);

/** One line for stderr and the exit code, whatever was thrown. */
export function describeFailure(error: unknown, interrupted: boolean): { line: string; exitCode: number } {
  if (interrupted) return { line: "interrupted", exitCode: EXIT.interrupted };
  if (error instanceof MusterApiError) {
    const request = error.requestId ? `, request ${error.requestId}` : "";
    const hint = error.code === "unauthorized" ? " (check MUSTER_API_KEY)" : "";
    return { line: `${error.code}: ${error.message}${hint} (HTTP ${error.status}${request})`, exitCode: EXIT.api };
  }
  if (error instanceof MusterConnectionError) return { line: error.message, exitCode: EXIT.unreachable };
  if (error instanceof MusterWaitTimeoutError) return { line: error.message, exitCode: EXIT.timeout };
  if (error instanceof CliError) return { line: error.message, exitCode: error.exitCode };
  return { line: error instanceof Error ? error.message : String(error), exitCode: EXIT.api };
}
