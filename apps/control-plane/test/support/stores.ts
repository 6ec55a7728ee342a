import { randomBytes } from "node:crypto";
import { throwawayDatabase } from "@muster/testkit";
import { openEmbedded, openPostgres } from "../../src/db/client.js";
import type { Kv } from "../../src/kv/kv.js";
import { MemoryKv } from "../../src/kv/memory.js";
import { RedisKv } from "../../src/kv/redis.js";
import type { Stores } from "../../src/runtime.js";

/**
 * The suite runs once per storage mode, chosen by the environment exactly as the
 * control plane chooses: DATABASE_URL + REDIS_URL for PostgreSQL + Redis,
 * DATABASE_URL + REDIS_CLUSTER_NODES for PostgreSQL + a Redis Cluster, neither
 * for the embedded default.
 */
export const storageMode: "postgres" | "embedded" = process.env.DATABASE_URL ? "postgres" : "embedded";

/** Which KV adapter this mode's tests get. */
export const kvMode: "in-process" | "Redis" | "Redis Cluster" =
  storageMode === "embedded" ? "in-process" : process.env.REDIS_CLUSTER_NODES ? "Redis Cluster" : "Redis";

export interface TestStores extends Stores {
  /** Drops what the stores hold and closes them. */
  dispose(): Promise<void>;
}

const unique = () => randomBytes(6).toString("hex");

/** A new Redis (or Redis Cluster) key space, or a fresh in-process KV. */
export async function createTestKv(): Promise<Kv> {
  if (kvMode === "in-process") return new MemoryKv();
  const target =
    kvMode === "Redis Cluster" ? { clusterNodes: requireEnv("REDIS_CLUSTER_NODES").split(",") } : { url: requireEnv("REDIS_URL") };
  return RedisKv.connect({ target, keyPrefix: `test-${unique()}:` });
}

/** A fresh database (a new PostgreSQL database, or an in-memory PGlite) and a fresh KV. */
export async function createTestStores(): Promise<TestStores> {
  const kv = await createTestKv();
  if (storageMode === "embedded") {
    const database = await openEmbedded(null);
    return { database, kv, dispose: async () => (await kv.close(), await database.close()) };
  }
  const throwaway = await throwawayDatabase(requireEnv("DATABASE_URL"), "muster_test");
  const database = await openPostgres(throwaway.url);
  return {
    database,
    kv,
    async dispose() {
      await kv.close();
      await database.close();
      await throwaway.drop();
    },
  };
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set when DATABASE_URL is (the PostgreSQL suite needs REDIS_URL or REDIS_CLUSTER_NODES too)`);
  return value;
}
