import type { Command } from "commander";
import { ago, table } from "../format.js";
import { duration } from "../parse.js";
import type { Io } from "../session.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";

interface CreateKeyOptions {
  user?: string;
  team?: string;
  expiresIn?: number;
}

export function keysCommand(parent: Command, io: Io): Command {
  const keys = parent.command("keys").description("operator API keys");

  keys
    .command("create")
    .argument("<name>", "what the key is for, e.g. \"ci\"")
    .option("--user <user_id>", "whose key (admin only; default: yours)")
    .option("--team <team_id>", "the team it acts in (default: your team)")
    .option("--expires-in <duration>", "lifetime, e.g. 30m, 720h (default: never expires)", duration)
    .description("create an API key; its secret is printed this once")
    .action(
      act(io, async (session, name: string, options: CreateKeyOptions) => {
        const body = {
          name,
          ...(options.user && { user_id: options.user }),
          ...(options.team && { team_id: options.team }),
          ...(options.expiresIn && { expires_in_s: Math.round(options.expiresIn / 1000) }),
        };
        const created = await session.client().apiKeys.create(body, session.call);
        const { api_key: key } = created;
        session.emit(created, () =>
          [
            `Created API key ${key.id} ("${key.name}") for ${key.user_id}${key.team_id ? ` in ${key.team_id}` : ""}`,
            `${key.expires_at ? `It expires at ${key.expires_at}.` : "It never expires."} The secret, shown this once:`,
            "",
            `  ${created.key}`,
            "",
          ].join("\n"),
        );
      }),
    );

  listOptions(keys.command("list").alias("ls").description("list API keys (admins: all; others: their own); never the secrets")).action(
    act(io, async (session, options: ListOptions) => {
      const client = session.client();
      const items = await collectList(session, (limit) => client.apiKeys.list({ limit }, session.call), options, "API keys");
      session.emit(items, () =>
        items.length === 0
          ? ""
          : table(
              ["id", "name", "user", "team", "start", "created", "last used", "expires"],
              items.map((k) => [k.id, k.name, k.user_id, k.team_id, `${k.start}…`, k.created_at, ago(k.last_used_at), k.expires_at]),
            ),
      );
    }),
  );

  keys
    .command("revoke")
    .alias("rm")
    .argument("<key_id>")
    .description("revoke an API key; it stops working at once")
    .action(
      act(io, async (session, id: string) => {
        await session.client().apiKeys.revoke(id, session.call);
        if (!session.json) session.out(`Revoked API key ${id}\n`);
      }),
    );

  return keys;
}
