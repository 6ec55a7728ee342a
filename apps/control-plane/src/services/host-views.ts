import type { Host } from "@muster/contract";
import { asc, inArray } from "drizzle-orm";
import { hostTags, type HostRow } from "../db/schema/index.js";
import type { Kv } from "../kv/kv.js";
import type { DbOrTx } from "./context.js";
import { isStoreUnavailable } from "../lib/store-errors.js";
import { LivenessSet } from "./liveness-set.js";

/**
 * Turns host rows into API objects. The newest heartbeat may still sit in the
 * KV store (beats reach the database in batches), so last_heartbeat_at is the
 * later of the two.
 */
export async function hostViews(db: DbOrTx, kv: Kv, rows: HostRow[]): Promise<Host[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((row) => row.id);
  const [tagRows, liveBeats] = await Promise.all([
    db.select().from(hostTags).where(inArray(hostTags.hostId, ids)).orderBy(asc(hostTags.tag)),
    // With the KV store unreachable the database's times answer (a flush behind at most): operator reads keep working.
    new LivenessSet(kv).scores(ids).catch((error: unknown) => {
      if (isStoreUnavailable(error)) return ids.map(() => null);
      throw error;
    }),
  ]);
  const tagsByHost = new Map<string, string[]>();
  for (const { hostId, tag } of tagRows) {
    const tags = tagsByHost.get(hostId) ?? [];
    tags.push(tag);
    tagsByHost.set(hostId, tags);
  }
  return rows.map((row, i) => hostView(row, tagsByHost.get(row.id) ?? [], liveBeats[i] ?? null));
}

function hostView(row: HostRow, tags: string[], liveBeatMs: number | null): Host {
  const storedBeatMs = row.lastHeartbeatAt?.getTime() ?? null;
  const lastBeatMs = Math.max(storedBeatMs ?? -Infinity, liveBeatMs ?? -Infinity);
  return {
    id: row.id,
    type: row.type,
    team_id: row.teamId,
    provider: row.provider,
    availability_zone: row.availabilityZone,
    arch: row.arch,
    cpu_cores: row.cpuCores,
    memory_mb: row.memoryMb,
    disk_gb: row.diskGb,
    address: row.address,
    hostname: row.hostname,
    os: row.os,
    agent_version: row.agentVersion,
    protocol_version: row.protocolVersion,
    status: row.status,
    tags,
    metrics: row.metrics ?? null,
    last_heartbeat_at: Number.isFinite(lastBeatMs) ? new Date(lastBeatMs).toISOString() : null,
    clock_skew_ms: row.clockSkewMs,
    registered_at: row.registeredAt?.toISOString() ?? null,
    cert_fingerprint: row.certFingerprint,
    cert_expires_at: row.certExpiresAt?.toISOString() ?? null,
    mtls_enabled: row.mtlsEnabled,
    last_probe: row.lastProbe ?? null,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}
