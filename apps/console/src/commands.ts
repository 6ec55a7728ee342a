import { TERMINAL_COMMAND_STATUSES } from "@muster/contract";
import type { Command, MusterClient } from "@muster/sdk/client";

const SHOWN = 10;

/**
 * The host's latest commands. The API has no list of a host's commands yet,
 * so they are found in the audit log (host.command_sent names each one) and
 * read one by one; only admins and owners read the audit log, and they are
 * the ones who may send commands. A command that has ended cannot change:
 * `ended` keeps those, so a reload reads only the ones still running.
 */
export async function recentCommands(client: MusterClient, hostId: string, ended: Map<string, Command>, signal: AbortSignal): Promise<Command[]> {
  const sent = await client.audit.listPage({ target_id: hostId, action: "host.command_sent", limit: SHOWN }, { signal });
  const ids = sent.items.map((entry) => entry.metadata.command_id).filter((id): id is string => typeof id === "string");
  return Promise.all(
    ids.map(async (id) => {
      const known = ended.get(id);
      if (known) return known;
      const command = await client.hosts.commands.get(hostId, id, { signal });
      if (TERMINAL_COMMAND_STATUSES.includes(command.status)) ended.set(id, command);
      return command;
    }),
  );
}
