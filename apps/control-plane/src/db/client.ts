import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import type { ExtractTablesWithRelations } from "drizzle-orm";
import postgres from "postgres";
import lockfile from "proper-lockfile";
import * as schema from "./schema/index.js";

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;

export interface Database {
  db: Db;
  /** "embedded" (PGlite in the data folder) or "postgres". */
  kind: "embedded" | "postgres";
  migrate(migrationsFolder: string): Promise<void>;
  /** Runs start-up work (migrations, bootstrap) in one process at a time. */
  exclusively<T>(work: () => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// Any fixed number shared by every process of one deployment.
const STARTUP_LOCK_KEY = 727_001;

export async function openPostgres(url: string): Promise<Database> {
  const client = postgres(url, {
    max: 10,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 60,
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return {
    db,
    kind: "postgres",
    async migrate(migrationsFolder) {
      await migratePostgres(drizzlePostgres(client, { schema }), { migrationsFolder });
    },
    async exclusively(work) {
      // Several control planes may start at once: one works, the others wait on the lock.
      const lockConnection = await client.reserve();
      try {
        await lockConnection`select pg_advisory_lock(${STARTUP_LOCK_KEY})`;
        return await work();
      } finally {
        await lockConnection`select pg_advisory_unlock(${STARTUP_LOCK_KEY})`.catch(() => {});
        lockConnection.release();
      }
    },
    async ping() {
      await db.execute(sql`select 1`);
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

export class DataDirLockedError extends Error {
  constructor(dir: string) {
    super(
      `The data folder ${dir} is in use by another Muster process. Stop it first, or set MUSTER_DATA_DIR to another folder.`,
    );
  }
}

/**
 * PGlite in `dataDir/pg`, or in memory when dataDir is null (tests). PGlite does
 * not guard its folder itself, so a lock file keeps a second process out.
 */
export async function openEmbedded(dataDir: string | null): Promise<Database> {
  let release: (() => Promise<void>) | null = null;
  let pglite: PGlite;
  if (dataDir === null) {
    pglite = new PGlite();
  } else {
    mkdirSync(dataDir, { recursive: true });
    try {
      release = await lockfile.lock(dataDir, { lockfilePath: join(dataDir, "muster.lock"), stale: 15_000 });
    } catch (error) {
      if ((error as { code?: string }).code === "ELOCKED") throw new DataDirLockedError(dataDir);
      throw error;
    }
    pglite = new PGlite(join(dataDir, "pg"));
  }
  const db = drizzlePglite(pglite, { schema }) as unknown as Db;
  return {
    db,
    kind: "embedded",
    async migrate(migrationsFolder) {
      await migratePglite(drizzlePglite(pglite, { schema }), { migrationsFolder });
    },
    // The data-folder lock already keeps every other process out.
    exclusively: (work) => work(),
    async ping() {
      await pglite.query("select 1");
    },
    async close() {
      await pglite.close();
      await release?.();
    },
  };
}
