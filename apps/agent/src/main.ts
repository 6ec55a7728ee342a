import "./v8-flags.js";
import { isatty } from "node:tty";
import { HELP, parseCommand, UsageError } from "./cli.js";
import { EXIT } from "./exit-codes.js";
import { createLogger } from "./log.js";
import { runAgent } from "./run.js";
import { AGENT_VERSION } from "./version.js";

/** SIGTERM/SIGINT end the process within this long, whatever is still running. */
const STOP_DEADLINE_MS = 900;

function main(): void {
  const tty = isatty(1);
  let command;
  try {
    command = parseCommand(process.argv.slice(2), process.env, { stdoutIsTty: tty });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`muster-agent: ${error.message.split("\n").join("\nmuster-agent: ")}\nRun muster-agent --help for the options.\n`);
    process.exit(EXIT.usage);
  }
  if (command.kind === "help") {
    process.stdout.write(HELP);
    return;
  }
  if (command.kind === "version") {
    process.stdout.write(`muster-agent ${AGENT_VERSION} (node ${process.version}, ${process.platform}-${process.arch})\n`);
    return;
  }

  const log = createLogger({ format: command.config.logFormat, level: command.config.logLevel, colour: tty && command.config.logFormat === "text" });
  const onSignal = (handler: (signal: string) => void) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.on(signal, () => {
        handler(signal);
        setTimeout(() => {
          log.warn({ signal }, "did not stop in time; exiting anyway");
          process.exit(EXIT.ok);
        }, STOP_DEADLINE_MS).unref();
      });
    }
  };
  process.on("unhandledRejection", (reason) => {
    log.error({ err: reason instanceof Error ? reason.message : String(reason) }, "unexpected error");
    process.exit(EXIT.internal);
  });

  runAgent(command.config, { log, onSignal }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      log.error({ err: error instanceof Error ? error.message : String(error) }, "unexpected error");
      process.exit(EXIT.internal);
    },
  );
}

main();
