import type { Command } from "commander";
import type { CaStatus, SigningKeys } from "@muster/sdk";
import { details, table } from "../format.js";
import type { Io } from "../session.js";
import { act } from "./common.js";

function signingKeysView(keys: SigningKeys): string {
  const rows = [keys.current, ...keys.retiring].map((key) => [key.kid, key.created_at, key.retires_at ?? "signs new tokens"]);
  return table(["kid", "created", "retires"], rows);
}

function caView(status: CaStatus): string {
  const pairs: [string, unknown][] = [
    ["Phase", status.phase],
    ["Source", status.source],
    ["Active CA", `${status.active.id} (sha256 ${status.active.fingerprint_sha256}, expires ${status.active.expires_at})`],
  ];
  if (status.previous) {
    pairs.push(
      ["Previous CA", `${status.previous.id} (sha256 ${status.previous.fingerprint_sha256})`],
      ["Rotating since", status.rotation_started_at],
      ["Hosts on previous", `${status.hosts_on_previous_ca} (${status.online_hosts_on_previous_ca} online)`],
    );
  }
  return details(pairs);
}

/** `muster admin …`: the control plane's own keys (admin keys only). */
export function adminCommand(parent: Command, io: Io): Command {
  const admin = parent.command("admin").description("the control plane's keys: host-token signing key, CA (admin)");

  admin
    .command("rotate-signing-key")
    .description("a new key signs host tokens from now on; tokens of the earlier one verify until they expire")
    .action(
      act(io, async (session) => {
        const keys = await session.client().system.rotateSigningKey(session.call);
        session.emit(keys, () => `Rotated: ${keys.current.kid} signs host tokens from now on.\n${signingKeysView(keys)}`);
      }),
    );

  admin
    .command("ca")
    .description("the CA rotation's phase, the active and previous CA, the hosts still on the previous one")
    .action(
      act(io, async (session) => {
        const status = await session.client().system.ca(session.call);
        session.emit(status, () => caView(status));
      }),
    );

  admin
    .command("rotate-ca")
    .option("--complete", "retire the previous CA (once its hosts have moved)")
    .option("--force", "with --complete: even while online hosts still hold its certificates (they are made to refresh at once)")
    .description("start a CA rotation (a new CA signs, both are trusted), or --complete it")
    .action(
      act(io, async (session, options: { complete?: boolean; force?: boolean }) => {
        const body = options.complete ? { action: "complete" as const, ...(options.force && { force: true }) } : { action: "start" as const };
        const status = await session.client().system.rotateCa(body, session.call);
        const next = options.complete
          ? "The previous CA is retired."
          : "Rotation started: agents pick up the new CA at their next refresh. When `muster admin ca` shows no host on the previous CA, run `muster admin rotate-ca --complete`.";
        session.emit(status, () => `${next}\n${caView(status)}`);
      }),
    );

  return admin;
}
