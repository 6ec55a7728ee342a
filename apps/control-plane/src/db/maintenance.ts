import { setImmediate as nextTurn } from "node:timers/promises";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Db } from "./client.js";
import { rowsOf } from "./rows.js";

const EVERY_MS = 60_000;

interface Due {
  table: string;
  vacuum: boolean;
}

/**
 * Autovacuum's work for the embedded database. PGlite runs PostgreSQL in
 * single-user mode, so no autovacuum worker ever starts: without this the
 * planner never learns a table's size (it planned the revocation list's page
 * query as "sort all 100,000 rows" for every page of 1,000, holding the event
 * loop for seconds) and rows that heartbeats and revocations replace are
 * never reclaimed. Every minute the tables past autovacuum's own thresholds
 * (its settings, read from the server) are vacuumed or analysed, one
 * statement per turn of the event loop. The counters those thresholds read
 * do not survive a restart of the embedded database, so a start analyses
 * every table first: rows written before the restart (or by another program
 * while the control plane was stopped) would otherwise never count.
 */
export class EmbeddedMaintenance {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /** One pass; returns the tables it vacuumed or analysed. */
  async runOnce(): Promise<Due[]> {
    // Counters reach pg_stat_user_tables after a short delay: flush this session's first.
    await this.db.execute(sql`select pg_stat_force_next_flush()`);
    const due = await rowsOf<Due>(
      this.db,
      sql`
        with s as (
          select current_setting('autovacuum_vacuum_threshold')::float8 as vt,
                 current_setting('autovacuum_vacuum_scale_factor')::float8 as vf,
                 current_setting('autovacuum_analyze_threshold')::float8 as at,
                 current_setting('autovacuum_analyze_scale_factor')::float8 as af
        )
        select t.relname as "table", t.n_dead_tup > s.vt + s.vf * greatest(c.reltuples, 0) as vacuum
        from pg_stat_user_tables t join pg_class c on c.oid = t.relid, s
        where t.schemaname = 'public'
          and (c.reltuples < 0
            or t.n_dead_tup > s.vt + s.vf * greatest(c.reltuples, 0)
            or t.n_mod_since_analyze > s.at + s.af * greatest(c.reltuples, 0))
        order by t.relname`,
    );
    for (const { table, vacuum } of due) {
      await nextTurn();
      const started = performance.now();
      await this.db.execute(vacuum ? sql`vacuum (analyze) ${sql.identifier(table)}` : sql`analyze ${sql.identifier(table)}`);
      this.logger.debug({ table, vacuum, ms: Math.round(performance.now() - started) }, "embedded database maintenance");
    }
    return due;
  }

  /** Analyses every table before returning, so the planner knows them before the first request. */
  async start(): Promise<void> {
    const started = performance.now();
    await this.db.execute(sql`analyze`);
    this.logger.debug({ ms: Math.round(performance.now() - started) }, "embedded database analysed at start");
    this.timer = setInterval(() => void this.pass(), EVERY_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private pass(): Promise<unknown> {
    this.running ??= this.runOnce()
      .catch((error: unknown) => this.logger.warn({ err: error }, "vacuuming the embedded database failed; retrying in a minute"))
      .finally(() => (this.running = null));
    return this.running;
  }
}
