import { InvalidArgumentError, Option, type Command } from "commander";
import { CommandStatus } from "@muster/contract";
import type { Command as HostCommand } from "@muster/sdk";
import { CliError, EXIT } from "../exit.js";
import { ago, clean, details, table } from "../format.js";
import { duration, literals } from "../parse.js";
import type { Io } from "../session.js";
import { startSpinner } from "../spinner.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";

interface CommandOptions {
  payload?: Record<string, unknown>;
  timeout?: number;
  wait: boolean;
  idempotencyKey?: string;
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
    .option("--idempotency-key <key>", "send it at most once: the same key with the same command within 24 h gives back the first one")
    .addHelpText(
      "after",
      `
The send is retried on a lost connection or a 503 without ever queueing the
command twice; --idempotency-key extends that to a script that runs the whole
command again.

Exit status: 0 succeeded (or queued, with --no-wait), 4 expired before the host
received it, 5 the host reported a failure (or its result did not arrive in time).

Examples:
  $ muster hosts command host-… ping
  $ muster hosts command host-… deploy --payload '{"image":"app:2"}' --timeout 10m --idempotency-key deploy-app-2`,
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
          { ...session.call, ...(options.idempotencyKey && { idempotencyKey: options.idempotencyKey }) },
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
        if (done.status === "expired") throw new CliError(`command ${done.id} expired before ${hostId} received it`, EXIT.timeout);
        if (done.status === "failed") throw new CliError(`command ${done.id} failed on ${hostId}: ${clean(done.error)}`, EXIT.commandFailed);
      }),
    );
}

/** `muster hosts commands <host_id>`: a host's commands, newest first. */
export function hostCommandsCommand(hosts: Command, io: Io): void {
  listOptions(
    hosts
      .command("commands")
      .argument("<host_id>")
      .description("list the commands sent to a host, newest first")
      .addOption(new Option("--status <status>").choices(literals(CommandStatus))),
  ).action(
    act(io, async (session, hostId: string, options: ListOptions & { status?: HostCommand["status"] }) => {
      const client = session.client();
      const filters = { ...(options.status && { status: options.status }) };
      const items = await collectList(session, (limit) => client.hosts.commands.list(hostId, { ...filters, limit }, session.call), options, "commands");
      session.emit(items, () =>
        items.length === 0
          ? ""
          : table(
              ["id", "type", "status", "sent", "finished", "error"],
              items.map((c) => [c.id, c.type, c.status, ago(c.created_at), c.completed_at ? ago(c.completed_at) : null, c.error]),
            ),
      );
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
