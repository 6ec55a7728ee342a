import { InvalidArgumentError, type Command } from "commander";
import { EVENT_TYPE_FILTERS, type EventTypeFilter, type MusterEvent } from "@muster/contract";
import { usageError } from "../exit.js";
import { clean } from "../format.js";
import { collect } from "../parse.js";
import type { Io } from "../session.js";
import { act } from "./common.js";

interface EventsOptions {
  follow?: boolean;
  type?: string[];
  host?: string;
  tag?: string;
  after?: string;
}

function eventTypes(value: string, previous: EventTypeFilter[] = []): EventTypeFilter[] {
  if (!(EVENT_TYPE_FILTERS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${EVENT_TYPE_FILTERS.join(", ")}.`);
  }
  return collect(value, previous) as EventTypeFilter[];
}

/** `muster events --follow`: what happens to the key's hosts and commands, as it happens. */
export function eventsCommand(parent: Command, io: Io): Command {
  return parent
    .command("events")
    .description("follow what happens to hosts and commands (the key's team; admins: all), resuming by itself when the connection drops")
    .option("-f, --follow", "stream events as they happen (required: the log is a stream, not a list)")
    .option("--type <type>", "only this event type, or host.* / command.* (repeatable)", eventTypes)
    .option("--host <host_id>", "only events of this host")
    .option("--tag <tag>", "only events of hosts carrying this tag")
    .option("--after <event_id>", "start after this event ID (default: from now)")
    .addHelpText(
      "after",
      `
One line per event; with --json one JSON document per line (NDJSON), each the
event as the API sends it. Ctrl-C stops.

Examples:
  $ muster events --follow
  $ muster events --follow --type host.offline --type host.online
  $ muster events --follow --type 'command.*' --json | jq .data.status`,
    )
    .action(
      act(io, async (session, options: EventsOptions) => {
        if (!options.follow) throw usageError("muster events streams what happens from now on: add --follow");
        const client = session.client();
        if (!session.json) session.note("Following events; Ctrl-C stops.");
        const events = client.events.watch({
          ...(options.type && { types: options.type as EventTypeFilter[] }),
          ...(options.host && { hostId: options.host }),
          ...(options.tag && { tag: options.tag }),
          ...(options.after && { after: options.after }),
          signal: session.io.signal,
          onReconnect: ({ delayMs }) => {
            if (!session.json) session.note(`Connection lost; reconnecting in ${Math.ceil(delayMs / 100) / 10} s, resuming where it stopped.`);
          },
        });
        for await (const event of events) {
          if (session.json) session.out(`${JSON.stringify(event)}\n`);
          else session.out(`${eventLine(event)}\n`);
        }
        // The stream ends only when Ctrl-C aborts it: exit as every interrupted command does (130).
        throw session.io.signal.reason;
      }),
    );
}

type CommandEvent = Extract<MusterEvent, { type: `command.${string}` }>;
const isCommandEvent = (event: MusterEvent): event is CommandEvent => event.type.startsWith("command.");

/** `time  type  host  what`: the parts of the resource a person following the fleet looks at. */
export function eventLine(event: MusterEvent): string {
  let what: string;
  if (isCommandEvent(event)) what = `${event.data.id} ${event.data.type} ${event.data.status}${event.data.error ? ` error=${event.data.error}` : ""}`;
  else {
    const host = event.data;
    what = [`status=${host.status}`, host.hostname && `hostname=${host.hostname}`, host.tags.length > 0 && `tags=${host.tags.join(",")}`].filter(Boolean).join(" ");
  }
  return [event.occurred_at, event.type.padEnd(24), event.host_id, clean(what)].join("  ");
}
