import type { Host, HostStatus, HostType } from "@muster/sdk/client";

export const STATUSES: HostStatus[] = ["online", "offline", "pending"];
export const TYPES: HostType[] = ["regular", "byoc"];

export interface FleetSummary {
  total: number;
  byStatus: Record<HostStatus, number>;
  byType: Record<HostType, Record<HostStatus, number>>;
  /** Hosts that are offline now and were last heard from within the hour: they went offline in it. */
  offlineInLastHour: number;
}

export function emptySummary(): FleetSummary {
  const none = () => ({ online: 0, offline: 0, pending: 0 });
  return { total: 0, byStatus: none(), byType: { regular: none(), byoc: none() }, offlineInLastHour: 0 };
}

/** Adds a page of hosts to the summary (the overview walks the whole list, page by page). */
export function summarize(summary: FleetSummary, hosts: Host[], now: number = Date.now()): FleetSummary {
  const hourAgo = now - 3_600_000;
  for (const host of hosts) {
    summary.total++;
    summary.byStatus[host.status]++;
    summary.byType[host.type][host.status]++;
    if (host.status === "offline" && host.last_heartbeat_at !== null && Date.parse(host.last_heartbeat_at) >= hourAgo) summary.offlineInLastHour++;
  }
  return summary;
}
