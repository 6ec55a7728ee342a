import type { Command } from "commander";
import { table } from "../format.js";
import type { Io } from "../session.js";
import { act } from "./common.js";

/** `muster hosts tag add|rm|ls`: a host's tags. */
export function tagCommand(parent: Command, io: Io): Command {
  const tag = parent.command("tag").description("add, remove and list a host's tags");

  tag
    .command("add")
    .argument("<host_id>")
    .argument("<tags...>", "1–63 of a-z 0-9 - _ . : =, starting with a letter or digit")
    .description("add tags to a host (adding one it has is a no-op)")
    .action(
      act(io, async (session, id: string, tags: string[]) => {
        const client = session.client();
        for (const name of tags) await client.hosts.tags.add(id, name, session.call);
        if (!session.json) session.out(`Tagged ${id}: ${tags.join(", ")}\n`);
      }),
    );

  tag
    .command("rm")
    .alias("remove")
    .argument("<host_id>")
    .argument("<tags...>")
    .description("remove tags from a host")
    .action(
      act(io, async (session, id: string, tags: string[]) => {
        const client = session.client();
        for (const name of tags) await client.hosts.tags.remove(id, name, session.call);
        if (!session.json) session.out(`Untagged ${id}: ${tags.join(", ")}\n`);
      }),
    );

  tag
    .command("ls")
    .alias("list")
    .argument("<host_id>")
    .description("list a host's tags")
    .action(
      act(io, async (session, id: string) => {
        const tags = await session.client().hosts.tags.list(id, session.call);
        if (!session.json && tags.length === 0) session.note(`${id} has no tags.`);
        session.emit(tags, () => (tags.length === 0 ? "" : table(["tag"], tags.map((t) => [t]))));
      }),
    );

  return tag;
}
