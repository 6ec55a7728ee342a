import type { Command } from "commander";
import { pairs, table } from "../format.js";
import type { Io } from "../session.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";

interface AuditOptions extends ListOptions {
  target?: string;
  action?: string;
}

export function auditCommand(parent: Command, io: Io): Command {
  return listOptions(
    parent.command("audit")
      .description("the audit log, newest first (admins: everything; owners: their team's)")
      .option("--target <id>", "only entries about this resource (host-…, usr-…, key-…)")
      .option("--action <action>", "only this action, e.g. host.created"),
  )
    .addHelpText("after", "\nExample:\n  $ muster audit --target host-… --limit 20")
    .action(
      act(io, async (session, options: AuditOptions) => {
        const client = session.client();
        const filters = { ...(options.target && { target_id: options.target }), ...(options.action && { action: options.action }) };
        const items = await collectList(session, (limit) => client.audit.list({ ...filters, limit }, session.call), options, "audit entries");
        session.emit(items, () =>
          items.length === 0
            ? ""
            : table(
                ["time", "action", "actor", "target", "team", "details"],
                items.map((e) => [e.created_at, e.action, e.actor, e.target_id, e.team_id, pairs(e.metadata)]),
              ),
        );
      }),
    );
}
