import { isAbsolute, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { RegisterHostBody } from "@muster/contract";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "./log.js";

export interface AgentConfig {
  controlPlane: string;
  registrationToken: string | null;
  address: string | null;
  credentialsFile: string;
  /** Where the mTLS endpoint listens; null: the registered address itself (its IP and port). */
  listen: { host: string; port: number } | null;
  registerOnly: boolean;
  /** Forget the control plane's certificate pin and pin it again at the first refresh. */
  repin: boolean;
  logFormat: LogFormat;
  logLevel: LogLevel;
}

export type Command = { kind: "help" } | { kind: "version" } | { kind: "run"; config: AgentConfig };

/** A flag or variable is wrong; the message says which and how to fix it. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const HELP = `muster-agent: enrolls this machine with a Muster control plane and keeps it online.

Usage:
  muster-agent --control-plane URL --register TOKEN --address IP:PORT [options]   first start
  muster-agent --control-plane URL [options]                                      later starts

Options (each has an environment variable; a flag wins over its variable):
  --control-plane URL        the control plane, e.g. https://muster.example.com   MUSTER_CONTROL_PLANE
  --register TOKEN           register with this one-time registration token;      MUSTER_REGISTRATION_TOKEN
                             replaces any saved credentials
  --address IP:PORT          where this host's services listen (with --register)  MUSTER_ADDRESS
  --credentials-file PATH    where the credentials are kept                        MUSTER_CREDENTIALS_FILE
                             (default: $STATE_DIRECTORY/credentials.json under
                             systemd, else /var/lib/muster-agent/credentials.json)
  --listen IP:PORT           where the mTLS endpoint for the control plane        MUSTER_LISTEN
                             listens (default: the registered address, its IP
                             and port; 0.0.0.0:PORT for every interface)
  --register-only            register, save the credentials and exit
  --repin                    trust the control plane's new certificate key (after a
                             deliberate key change) and pin it again
  --log-format json|text     default: text on a terminal, JSON lines otherwise    MUSTER_LOG_FORMAT
  --log-level LEVEL          debug, info, warn, error or silent (default info)    MUSTER_LOG_LEVEL
  -h, --help                 show this help
  -v, --version              print the version

Exit status: 0 stopped by SIGTERM/SIGINT (or --register-only done), 1 unexpected error,
2 bad flags or environment, 3 missing or unreadable credentials, 4 registration failed
(nothing saved), 5 the refresh was refused (register again), 6 the host was deleted
(credentials removed), 7 the control plane needs a newer agent (upgrade), 8 the control
plane's certificate is not the pinned one (--repin if its key changed on purpose).
`;

const ADDRESS_PATTERN = new RegExp(RegisterHostBody.properties.address.pattern!);

/** Flags and the environment into a command. Throws `UsageError`. */
export function parseCommand(argv: string[], env: Record<string, string | undefined>, options: { stdoutIsTty?: boolean } = {}): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        "control-plane": { type: "string" },
        register: { type: "string" },
        address: { type: "string" },
        "credentials-file": { type: "string" },
        listen: { type: "string" },
        "register-only": { type: "boolean" },
        repin: { type: "boolean" },
        "log-format": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  const flags = parsed.values;
  if (flags.help) return { kind: "help" };
  if (flags.version) return { kind: "version" };

  const pick = (flag: string | undefined, variable: string): string | null => {
    const value = flag ?? env[variable];
    return value === undefined || value.trim() === "" ? null : value.trim();
  };
  const problems: string[] = [];

  const controlPlane = pick(flags["control-plane"], "MUSTER_CONTROL_PLANE");
  if (!controlPlane) problems.push("--control-plane (or MUSTER_CONTROL_PLANE) is required");
  else if (!isHttpUrl(controlPlane)) problems.push(`--control-plane must be an http:// or https:// URL (got "${controlPlane}")`);

  const registrationToken = pick(flags.register, "MUSTER_REGISTRATION_TOKEN");
  const address = pick(flags.address, "MUSTER_ADDRESS");
  if (registrationToken && !address) problems.push("--address (or MUSTER_ADDRESS) is required with --register: the IP:PORT where this host listens");
  if (address && !ADDRESS_PATTERN.test(address)) problems.push(`--address must be IP:PORT, HOST:PORT or [IPv6]:PORT (got "${address}")`);
  const listenAt = pick(flags.listen, "MUSTER_LISTEN");
  if (listenAt && !ADDRESS_PATTERN.test(listenAt)) problems.push(`--listen must be IP:PORT or [IPv6]:PORT (got "${listenAt}")`);
  const registerOnly = flags["register-only"] ?? false;
  if (registerOnly && !registrationToken) problems.push("--register-only needs --register TOKEN (or MUSTER_REGISTRATION_TOKEN)");

  const logFormat = pick(flags["log-format"], "MUSTER_LOG_FORMAT") ?? (options.stdoutIsTty ? "text" : "json");
  if (logFormat !== "json" && logFormat !== "text") problems.push(`--log-format must be json or text (got "${logFormat}")`);
  const logLevel = pick(flags["log-level"], "MUSTER_LOG_LEVEL") ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.push(`--log-level must be one of ${LOG_LEVELS.join(", ")} (got "${logLevel}")`);

  const file = pick(flags["credentials-file"], "MUSTER_CREDENTIALS_FILE");
  const credentialsFile = file
    ? resolve(file)
    : env.STATE_DIRECTORY && isAbsolute(env.STATE_DIRECTORY.split(":")[0]!)
      ? join(env.STATE_DIRECTORY.split(":")[0]!, "credentials.json")
      : "/var/lib/muster-agent/credentials.json";

  if (problems.length > 0) throw new UsageError(problems.join("\n"));
  return {
    kind: "run",
    config: {
      controlPlane: controlPlane!,
      registrationToken,
      address,
      credentialsFile,
      listen: listenAt && ADDRESS_PATTERN.test(listenAt) ? splitAddress(listenAt) : null,
      registerOnly,
      repin: flags.repin ?? false,
      logFormat: logFormat as LogFormat,
      logLevel: logLevel as LogLevel,
    },
  };
}

/** `IP:PORT` or `[IPv6]:PORT` into its parts. */
export function splitAddress(address: string): { host: string; port: number } {
  const split = address.lastIndexOf(":");
  return { host: address.slice(0, split).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(split + 1)) };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}
