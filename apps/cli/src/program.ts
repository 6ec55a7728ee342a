import { Command } from "commander";
import { adminCommand } from "./commands/admin.js";
import { auditCommand } from "./commands/audit.js";
import { eventsCommand } from "./commands/events.js";
import { hostsCommand } from "./commands/hosts.js";
import { keysCommand } from "./commands/keys.js";
import { teamsCommand } from "./commands/teams.js";
import { usersCommand } from "./commands/users.js";
import { whoamiCommand } from "./commands/whoami.js";
import { duration } from "./parse.js";
import { DEFAULT_URL, type Io } from "./session.js";

const FOOTER = `
Environment:
  MUSTER_URL       the control plane (default ${DEFAULT_URL})
  MUSTER_API_KEY   an operator API key

Exit codes:
  0    success
  1    the API refused (the message names its error code), or an unexpected failure
  2    usage error: unknown command or option, bad value
  3    cannot reach the control plane, or no API key
  4    --wait gave up before the host came online
  130  interrupted (Ctrl-C)`;

/**
 * The whole command tree. Settings made on the root before the subcommands
 * are added (output, error handling, help) are inherited by every one of them.
 */
export function buildProgram(io: Io): Command {
  const program = new Command("muster")
    .description("Operate a Muster control plane from the terminal: hosts, tags, teams, users, API keys, audit, events, the control plane's keys.")
    .version(io.version)
    .option("--url <url>", "control plane URL (env MUSTER_URL)")
    .option("--api-key <key>", "operator API key (env MUSTER_API_KEY; prefer the variable, flags show in ps)")
    .option("--json", "print JSON for scripts instead of tables")
    .option("--request-timeout <duration>", "give up on one API call after this long (default 30s)", duration)
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError("(run with --help for usage)")
    // Commander would call process.exit itself; run() maps its errors to our exit codes instead.
    .exitOverride()
    .addHelpText("after", FOOTER);

  hostsCommand(program, io);
  teamsCommand(program, io);
  usersCommand(program, io);
  keysCommand(program, io);
  auditCommand(program, io);
  eventsCommand(program, io);
  adminCommand(program, io);
  whoamiCommand(program, io);
  return program;
}
