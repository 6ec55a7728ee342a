import { execFile } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
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
import { claimDataDir, DataDirError, restrictDataDir } from "./data-dir.js";
import * as schema from "./schema/index.js";

export { DataDirError };

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;

export interface Database {
  db: Db;
  /** "embedded" (PGlite in the data folder) or "postgres". */
  kind: "embedded" | "postgres";
  /** The embedded database's data folder; null for PostgreSQL and for an in-memory PGlite. */
  dataDir: string | null;
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
    dataDir: null,
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

export class DataDirLockedError extends DataDirError {
  constructor(dir: string) {
    super(
      `The data folder ${dir} is in use by another Muster process. Stop it first, or set MUSTER_DATA_DIR to another folder.`,
    );
  }
}

/** A live holder keeps the lock's mtime fresh; this long after its last refresh, a lock is taken over. */
const LOCK_STALE_MS = 15_000;

/**
 * Takes the data folder's lock. A holder that died without releasing it
 * (kill -9, power loss) leaves it behind until it goes stale: when the PID the
 * holder recorded is no longer running, the start waits for that (at most
 * LOCK_STALE_MS) instead of refusing, so a crashed control plane restarts by
 * itself. The takeover stays proper-lockfile's, which is race-free; the PID
 * only decides between waiting and refusing at once.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockfilePath = join(dataDir, "muster.lock");
  const pidPath = join(dataDir, "muster.pid");
  const take = (retries: number) =>
    lockfile.lock(dataDir, { lockfilePath, stale: LOCK_STALE_MS, retries: { retries, factor: 1, minTimeout: 1000, maxTimeout: 1000 } });
  let release: () => Promise<void>;
  try {
    release = await take(0).catch((error: unknown) => {
      if ((error as { code?: string }).code !== "ELOCKED" || holderRunning(pidPath)) throw error;
      return take(LOCK_STALE_MS / 1000 + 2);
    });
  } catch (error) {
    if ((error as { code?: string }).code === "ELOCKED") throw new DataDirLockedError(dataDir);
    throw error;
  }
  writeFileSync(pidPath, String(process.pid), { mode: 0o600 });
  return async () => {
    rmSync(pidPath, { force: true });
    await release();
  };
}

/** Whether the process that recorded its PID in `pidPath` still runs; unknown counts as running. */
function holderRunning(pidPath: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(pidPath, "utf8"));
  } catch {
    return true;
  }
  if (!Number.isInteger(pid) || pid <= 0) return true;
  // Our own PID there is an earlier life's (a restarted container often gets the same PID).
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * PostgreSQL's settings for the embedded database. PGlite keeps PostgreSQL's
 * shared memory in the process's own (WebAssembly) memory, which never
 * shrinks; the server default of 128 MB of shared buffers is sized for a
 * machine's database server, not for a control plane's few tables: 8 MB
 * holds the working set of a fleet of thousands (docs/benchmarks.md).
 */
const PGLITE_OPTIONS = { startParams: [...PGlite.defaultStartParams, "-c", "shared_buffers=8MB"] };

/**
 * Creates a new data folder's database in a process of its own. PGlite's
 * initdb peaks at ~750 MiB in the process that runs it, and that process never
 * gets the memory back (WebAssembly memory does not shrink, and the C heap it
 * grew stays fragmented): in a short-lived process the peak ends with it.
 */
async function createDatabaseApart(pgDir: string): Promise<void> {
  const script = [
    `const { PGlite } = await import(${JSON.stringify(import.meta.resolve("@electric-sql/pglite"))});`,
    `const db = new PGlite(${JSON.stringify(pgDir)}, ${JSON.stringify(PGLITE_OPTIONS)});`,
    "await db.waitReady;",
    "await db.close();",
  ].join("\n");
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "--eval", script], { timeout: 300_000 }, (error, _stdout, stderr) =>
      error ? reject(new Error(`creating the embedded database in ${pgDir} failed: ${stderr.trim() || error.message}`)) : resolve(),
    );
  });
}

/**
 * PGlite in `dataDir/pg`, or in memory when dataDir is null (tests). PGlite does
 * not guard its folder itself, so a lock file keeps a second process out. The
 * folder is owner-only, and so is everything in it once PGlite is up (it
 * unpacks its first files world-readable, whatever the umask).
 */
export async function openEmbedded(dataDir: string | null): Promise<Database> {
  // PGlite's WebAssembly (9 MB of PostgreSQL) stays in V8's baseline compiler: optimising it cost ~40 MiB
  // of compiler memory the process kept, for queries the control plane seldom runs (beats do not reach PostgreSQL one by one).
  setFlagsFromString("--liftoff-only");
  let release: (() => Promise<void>) | null = null;
  let pglite: PGlite;
  if (dataDir === null) {
    pglite = new PGlite(PGLITE_OPTIONS);
  } else {
    claimDataDir(dataDir);
    release = await lockDataDir(dataDir);
    const pgDir = join(dataDir, "pg");
    try {
      if (!existsSync(join(pgDir, "PG_VERSION"))) await createDatabaseApart(pgDir);
      pglite = new PGlite(pgDir, PGLITE_OPTIONS);
      await pglite.waitReady;
      restrictDataDir(dataDir);
    } catch (error) {
      await release();
      throw error;
    }
  }
  const db = drizzlePglite(pglite, { schema }) as unknown as Db;
  return {
    db,
    kind: "embedded",
    dataDir,
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
