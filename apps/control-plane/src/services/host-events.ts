import type { Host, HostEventType } from "@muster/contract";
import type { Tx } from "../db/client.js";
import type { HostRow } from "../db/schema/index.js";
import type { ServiceDeps } from "./context.js";
import { recordEvents, type NewEvent } from "./events.js";
import { hostViews } from "./host-views.js";

/** A host event carrying the host as the API returns it; `alsoTags` (tags it had before) join what `?tag=` matches. */
export function hostEvent(type: HostEventType, host: Host, alsoTags: readonly string[] = []): NewEvent {
  const tags = alsoTags.length === 0 ? host.tags : [...new Set([...host.tags, ...alsoTags])];
  return { type, teamId: host.team_id, hostId: host.id, tags, data: host };
}

/** Records one event per host row, each with the host as the API would return it now. */
export async function recordHostEvents(tx: Tx, deps: Pick<ServiceDeps, "clock" | "kv">, type: HostEventType, rows: HostRow[]): Promise<void> {
  if (rows.length === 0) return;
  const views = await hostViews(tx, deps.kv, rows);
  await recordEvents(tx, deps, views.map((host) => hostEvent(type, host)));
}
