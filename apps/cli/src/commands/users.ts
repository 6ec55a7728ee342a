import type { Command } from "commander";
import { details, table } from "../format.js";
import type { Io } from "../session.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";

export function usersCommand(parent: Command, io: Io): Command {
  const users = parent.command("users").description("users (admin)");

  users
    .command("create")
    .argument("<email>")
    .option("--name <name>", "display name")
    .option("--admin", "make the user an admin (every team, every host)")
    .description("create a user")
    .action(
      act(io, async (session, email: string, options: { name?: string; admin?: boolean }) => {
        const body = { email, ...(options.name && { name: options.name }), ...(options.admin && { is_admin: true }) };
        const created = await session.client().users.create(body, session.call);
        const { user } = created;
        session.emit(created, () => details([["Created user", user.id], ["Email", user.email], ["Name", user.name], ["Admin", user.is_admin ? "yes" : "no"]]));
      }),
    );

  listOptions(users.command("list").alias("ls").description("list users")).action(
    act(io, async (session, options: ListOptions) => {
      const client = session.client();
      const items = await collectList(session, (limit) => client.users.list({ limit }, session.call), options, "users");
      session.emit(items, () =>
        items.length === 0 ? "" : table(["id", "email", "name", "admin", "created"], items.map((u) => [u.id, u.email, u.name, u.is_admin ? "yes" : "no", u.created_at])),
      );
    }),
  );

  return users;
}
