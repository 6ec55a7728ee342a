import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEmbedded, type Db } from "../src/db/client.js";
import { EmbeddedMaintenance } from "../src/db/maintenance.js";
import { rowsOf } from "../src/db/rows.js";
import { MIGRATIONS, startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";
import { storageMode } from "./support/stores.js";

/**
 * PGlite has no autovacuum: the control plane does its work for the embedded
 * database. Without it the planner took a table of 100,000 revoked
 * certificates for a few dozen rows and sorted all of them for every page of
 * the revocation list.
 */
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const CRL_PAGE = sql`select serial from host_certificates
  where ca_id = 'ca' and revoked_at is not null and expires_at > now() and serial > '' order by serial limit 1000`;

async function plan(db: Db = t.runtime.deps.db): Promise<string> {
  const rows = await rowsOf<{ "QUERY PLAN": string }>(db, sql`explain ${CRL_PAGE}`);
  return rows.map((row) => row["QUERY PLAN"]).join("\n");
}

const stats = async (table: string) =>
  (
    await rowsOf<{ dead: number; analyzed: boolean }>(
      t.runtime.deps.db,
      sql`select n_dead_tup::int as dead, (last_analyze is not null) as analyzed from pg_stat_user_tables where relname = ${table}`,
    )
  )[0]!;

describe("the embedded database's maintenance", () => {
  if (storageMode === "embedded") {
    it("analyses a table grown past autovacuum's threshold, so the revocation list's pages are read by index, not sorted whole", async () => {
      const f = new Factories(t);
      const { host } = await f.regularHost();
      await t.runtime.deps.db.execute(sql`
        insert into host_certificates (serial, host_id, fingerprint, created_at, expires_at, revoked_at)
        select s, ${host.id}, s, now(), now() + interval '1 day', now()
        from (select md5(g::text) as s from generate_series(1, 20000) g) serials`);
      expect(await plan()).toMatch(/Sort/);

      const done = await t.runtime.maintenance!.runOnce();
      expect(done).toContainEqual({ table: "host_certificates", vacuum: false });
      expect((await stats("host_certificates")).analyzed).toBe(true);
      expect(await plan()).not.toMatch(/Sort/);
      expect(await plan()).toMatch(/Index Scan using host_certificates_crl_idx/);
      // Nothing changed since: the next pass leaves the table alone.
      expect(await t.runtime.maintenance!.runOnce()).not.toContainEqual(expect.objectContaining({ table: "host_certificates" }));
    });

    it("vacuums a table whose replaced rows pass the threshold, reclaiming them", async () => {
      await t.runtime.deps.db.execute(sql`update host_certificates set superseded_at = now()`);
      await t.runtime.deps.db.execute(sql`select pg_stat_force_next_flush()`);
      expect((await stats("host_certificates")).dead).toBeGreaterThan(10_000);
      expect(await t.runtime.maintenance!.runOnce()).toContainEqual({ table: "host_certificates", vacuum: true });
      expect((await stats("host_certificates")).dead).toBe(0);
    });

    it("analyses every table when it starts: the counters its thresholds read do not survive a restart", async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "muster-maintenance-"));
      try {
        let database = await openEmbedded(dataDir);
        await database.migrate(MIGRATIONS);
        await new EmbeddedMaintenance(database.db, t.runtime.deps.logger).start();
        // Written after the last analyse, then the database stops: the counts of these rows are lost with it.
        await database.db.execute(sql`alter table host_certificates drop constraint host_certificates_host_id_hosts_id_fk`);
        await database.db.execute(sql`
          insert into host_certificates (serial, host_id, fingerprint, created_at, expires_at, revoked_at)
          select s, 'host-x', s, now(), now() + interval '1 day', now() from (select md5(g::text) as s from generate_series(1, 20000) g) serials`);
        await database.close();

        database = await openEmbedded(dataDir);
        const maintenance = new EmbeddedMaintenance(database.db, t.runtime.deps.logger);
        try {
          expect(await plan(database.db)).toMatch(/Sort/);
          expect(await maintenance.runOnce()).toEqual([]);
          await maintenance.start();
          expect(await plan(database.db)).toMatch(/Index Scan using host_certificates_crl_idx/);
        } finally {
          await maintenance.stop();
          await database.close();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  } else {
    it("is left to PostgreSQL's autovacuum", async () => {
      expect(t.runtime.maintenance).toBeNull();
      const [setting] = await rowsOf<{ autovacuum: string }>(t.runtime.deps.db, sql`show autovacuum`);
      expect(setting!.autovacuum).toBe("on");
    });
  }
});
