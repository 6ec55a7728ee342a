import { InvalidArgumentError, type Command } from "commander";
import type { Command as HostCommand } from "@muster/sdk";
import { CliError, EXIT } from "../exit.js";
import { clean, details } from "../format.js";
import { duration } from "../parse.js";
import type { Io } from "../session.js";
import { startSpinner } from "../spinner.js";
import { act } from "./common.js";

interface CommandOptions {
  payload?: Record<string, unknown>;
  timeout?: number;
  wait: boolean;
}

function jsonObject(raw: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError("expected a JSON object, e.g. '{\"image\":\"app:2\"}'.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError("expected a JSON object.");
  return value as Record<string, unknown>;
}

/** `muster hosts command <host_id> <type>`: send a command to a host's agent and, by default, wait for its result. */
export function hostCommandCommand(hosts: Command, io: Io): void {
  hosts
    .command("command")
    .alias("exec")
    .argument("<host_id>")
    .argument("<type>", "ping, refresh_credentials, or a type the host's daemon handles")
    .description("send a command to a host's agent over its channel and wait for the result")
    .option("--payload <json>", "the command's arguments, a JSON object", jsonObject)
    .option("--timeout <duration>", "the command expires if unfinished after this long (default 5m)", duration)
    .option("--no-wait", "print the queued command and return at once")
    .addHelpText(
      "after",
      `
Exit status: 0 succeeded (or queued, with --no-wait), 4 expired before the host
answered, 5 the host reported a failure.

Examples:
  $ muster hosts command host-… ping
  $ muster hosts command host-… deploy --payload '{"image":"app:2"}' --timeout 10m`,
    )
    .action(
      act(io, async (session, hostId: string, type: string, options: CommandOptions) => {
        const client = session.client();
        const sent = await client.hosts.commands.send(
          hostId,
          {
            type,
            ...(options.payload && { payload: options.payload }),
            ...(options.timeout !== undefined && { timeout_s: Math.max(1, Math.ceil(options.timeout / 1000)) }),
          },
          session.call,
        );
        if (!options.wait) return session.emit(sent, () => commandDetails(sent));
        const spinner = session.json ? null : startSpinner(session.io.stderr, `Waiting for ${hostId} to run ${type} (${sent.status})… Ctrl-C stops waiting, not the command`);
        let done: HostCommand;
        try {
          done = await client.hosts.commands.wait(hostId, sent.id, {
            timeoutMs: sent.timeout_s * 1000 + 5_000,
            signal: session.io.signal,
            onPoll: (seen) => spinner?.update(`Waiting for ${hostId} to run ${type} (${seen.status})… Ctrl-C stops waiting, not the command`),
          });
        } finally {
          spinner?.stop();
        }
        session.emit(done, () => commandDetails(done));
        if (done.status === "expired") throw new CliError(`command ${done.id} expired before ${hostId} reported a result`, EXIT.timeout);
        if (done.status === "failed") throw new CliError(`command ${done.id} failed on ${hostId}: ${clean(done.error)}`, EXIT.commandFailed);
      }),
    );
}

function commandDetails(c: HostCommand): string {
  return details([
    ["ID", c.id],
    ["Host", c.host_id],
    ["Type", c.type],
    ["Status", c.status],
    ["Result", c.result === null ? null : JSON.stringify(c.result)],
    ["Error", c.error],
    ["Sent", c.created_at],
    ["Delivered", c.delivered_at],
    ["Finished", c.completed_at],
    ["Expires", c.expires_at],
  ]);
}
