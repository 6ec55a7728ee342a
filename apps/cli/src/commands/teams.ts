import { Option, type Command } from "commander";
import { TeamRole } from "@muster/contract";
import type { TeamRole as Role } from "@muster/sdk";
import { details, table } from "../format.js";
import { literals } from "../parse.js";
import type { Io } from "../session.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";

export function teamsCommand(parent: Command, io: Io): Command {
  const teams = parent.command("teams").description("teams and their members");

  teams
    .command("create")
    .argument("<name>")
    .description("create a team (admin)")
    .action(
      act(io, async (session, name: string) => {
        const created = await session.client().teams.create({ name }, session.call);
        session.emit(created, () => details([["Created team", created.team.id], ["Name", created.team.name]]));
      }),
    );

  listOptions(teams.command("list").alias("ls").description("list teams (admins: all; others: their own)")).action(
    act(io, async (session, options: ListOptions) => {
      const client = session.client();
      const items = await collectList(session, (limit) => client.teams.list({ limit }, session.call), options, "teams");
      session.emit(items, () => (items.length === 0 ? "" : table(["id", "name", "created"], items.map((t) => [t.id, t.name, t.created_at]))));
    }),
  );

  const members = teams.command("members").description("add and remove a team's members (admin, team owner)");

  members
    .command("add")
    .argument("<team_id>")
    .argument("<user_id>")
    .addOption(new Option("--role <role>").choices(literals(TeamRole)).default("member"))
    .description("add a user to a team")
    .action(
      act(io, async (session, teamId: string, userId: string, options: { role: Role }) => {
        const { member } = await session.client().teams.members.add(teamId, { user_id: userId, role: options.role }, session.call);
        session.emit({ member }, () => `Added ${member.user_id} to ${member.team_id} as ${member.role}\n`);
      }),
    );

  members
    .command("rm")
    .alias("remove")
    .argument("<team_id>")
    .argument("<user_id>")
    .description("remove a user from a team; their API keys for it are revoked")
    .action(
      act(io, async (session, teamId: string, userId: string) => {
        await session.client().teams.members.remove(teamId, userId, session.call);
        if (!session.json) session.out(`Removed ${userId} from ${teamId}\n`);
      }),
    );

  return teams;
}
