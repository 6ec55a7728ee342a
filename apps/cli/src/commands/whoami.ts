import type { Command } from "commander";
import { details } from "../format.js";
import type { Io } from "../session.js";
import { act } from "./common.js";

export function whoamiCommand(parent: Command, io: Io): Command {
  return parent.command("whoami").description("who the API key belongs to, its team and role").action(
    act(io, async (session) => {
      const me = await session.client().me(session.call);
      session.emit(me, () =>
        details([
          ["User", `${me.user.email} (${me.user.id})`],
          ["Role", me.role],
          ["Team", me.team ? `${me.team.name} (${me.team.id})` : null],
          ["Control plane", session.url],
        ]),
      );
    }),
  );
}
