import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import type { HostCredentials } from "@muster/contract";
import { hosts } from "../src/db/schema/index.js";
import type { Kv } from "../src/kv/kv.js";
import { SERVING_SEEN_KEY, SERVING_SINCE_KEY } from "../src/services/kv-keys.js";
import { LivenessSet } from "../src/services/liveness-set.js";
import { Pacing } from "../src/services/pacing.js";
import { BEAT_PERSIST_MS, Liveness, UNFLUSHED_ALLOWANCE_MS } from "../src/services/liveness.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

describe("liveness with a hand-driven clock", () => {
  let t: TestApp;
  let f: Factories;
  const clock = new FakeClock();
  const offlineAfterMs = () => t.config.offlineAfterS * 1000;
  /** How long after its last beat a host may be marked offline: its window plus the allowance for batched beats. */
  const pastDeadline = () => offlineAfterMs() + UNFLUSHED_ALLOWANCE_MS;
  const liveness = () => t.runtime.deps.liveness;

  beforeAll(async () => {
    // The hosts of every test here go silent together; the mass-silence breaker has its own tests.
    t = await startTestApp({ clock, config: { massOfflinePercent: 100 } });
    f = new Factories(t);
  });
  afterAll(() => t.close());

  const status = async (id: string) => (await t.http.get(`/v1/hosts/${id}`, { key: t.adminKey })).body;
  const storedRow = async (id: string) => (await t.stores.database.db.select().from(hosts).where(eq(hosts.id, id)))[0]!;

  it("turns a host online at its first heartbeat, with one audit entry", async () => {
    const creds = await f.enrolledHost();
    expect((await status(creds.host.id)).status).toBe("pending");
    expect((await f.heartbeat(creds)).status).toBe(204);
    expect((await status(creds.host.id)).status).toBe("online");
    clock.advance(1000);
    expect((await f.heartbeat(creds)).status).toBe(204);
    const online = await f.auditOf(creds.host.id, "host.online");
    expect(online).toHaveLength(1);
    expect(online[0]!.actor).toBe(creds.host.id);
  });

  it("group-commits a stampede of first beats: every host online once, in a few transactions", async () => {
    const fleet: HostCredentials[] = [];
    for (let i = 0; i < 50; i++) fleet.push(await f.enrolledHost());
    // Verified once already, so the 50 beats reach the status change together, as a fleet does after a start.
    for (const creds of fleet) await t.runtime.deps.hostTokens.verify(creds.token);
    const db = t.stores.database.db;
    const transaction = db.transaction.bind(db);
    let transactions = 0;
    db.transaction = ((work: Parameters<typeof transaction>[0]) => (transactions++, transaction(work))) as typeof db.transaction;
    try {
      const beats = await Promise.all(fleet.map((creds) => f.heartbeat(creds)));
      expect(beats.map((res) => res.status)).toEqual(fleet.map(() => 204));
    } finally {
      db.transaction = transaction;
    }
    expect(transactions).toBeLessThanOrEqual(5);
    for (const creds of fleet) {
      expect((await status(creds.host.id)).status).toBe("online");
      expect(await f.auditOf(creds.host.id, "host.online")).toHaveLength(1);
    }
  });

  it("batches beats: reads see them at the score flush, the database at its own flush", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    await liveness().flush();
    const firstBeat = (await storedRow(creds.host.id)).lastHeartbeatAt!;

    clock.advance(5000);
    expect((await f.heartbeat(creds, { cpu_percent: 42.5, memory_used_mb: 1024 })).status).toBe(204);
    expect((await status(creds.host.id)).last_heartbeat_at).toBe(firstBeat.toISOString());

    await liveness().flushScores();
    expect((await status(creds.host.id)).last_heartbeat_at).toBe(clock.now().toISOString());
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(firstBeat);

    await liveness().flush();
    const row = await storedRow(creds.host.id);
    expect(row.lastHeartbeatAt).toEqual(clock.now());
    expect(row.metrics).toEqual({ cpu_percent: 42.5, memory_used_mb: 1024 });
    expect((await status(creds.host.id)).metrics).toEqual({ cpu_percent: 42.5, memory_used_mb: 1024 });
  });

  it("writes a beat time alone to the database once per BEAT_PERSIST_MS, and the exact last one when the host goes offline", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    await liveness().flush();
    const firstBeat = clock.now();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(firstBeat);

    clock.advance(5000);
    await f.heartbeat(creds);
    await liveness().flushScores();
    await liveness().flush();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(firstBeat);
    expect((await status(creds.host.id)).last_heartbeat_at).toBe(clock.now().toISOString());

    clock.advance(BEAT_PERSIST_MS);
    await f.heartbeat(creds);
    await liveness().flush();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(clock.now());

    clock.advance(5000);
    await f.heartbeat(creds);
    await liveness().flushScores();
    await liveness().flush();
    const lastBeat = clock.now();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).not.toEqual(lastBeat);

    clock.advance(pastDeadline() + 1);
    await liveness().sweepOnce();
    const row = await storedRow(creds.host.id);
    expect(row.status).toBe("offline");
    expect(row.lastHeartbeatAt).toEqual(lastBeat);
    expect((await status(creds.host.id)).last_heartbeat_at).toBe(lastBeat.toISOString());
    const [offline] = await f.auditOf(creds.host.id, "host.offline");
    expect(offline!.metadata).toEqual({ last_heartbeat_at: lastBeat.toISOString() });
  });

  it("writes a beat time alone at least twice per offline window, when the window is short", async () => {
    const creds = await f.enrolledHost();
    const claims = await t.runtime.deps.hostTokens.verify(creds.token);
    const pacing = new Pacing(t.stores.database.db, { heartbeatIntervalS: 1, offlineAfterS: 4, maxHeartbeatsPerS: null }, t.runtime.deps.logger);
    const shortWindow = new Liveness({ ...t.runtime.deps, pacing }, "short-window", clock.now());
    await shortWindow.heartbeat(claims, creds.host.id, {});
    await shortWindow.flush();
    clock.advance(2000);
    await shortWindow.heartbeat(claims, creds.host.id, {});
    await shortWindow.flush();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(clock.now());
    await shortWindow.stop();
  });

  it("writes every batched beat time when it stops", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    const claims = await t.runtime.deps.hostTokens.verify(creds.token);
    const stopping = new Liveness(t.runtime.deps, "stopping", clock.now());
    await stopping.heartbeat(claims, creds.host.id, {});
    await stopping.flush();
    clock.advance(5000);
    await stopping.heartbeat(claims, creds.host.id, {});
    await stopping.flush();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).not.toEqual(clock.now());
    await stopping.stop();
    expect((await storedRow(creds.host.id)).lastHeartbeatAt).toEqual(clock.now());
  });

  it("keeps batched scores for the next flush when the KV store refuses one", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(1000);
    await f.heartbeat(creds);
    // The beat waits in the runtime's batch; its KV store fails once.
    const zAddMany = t.stores.kv.zAddMany.bind(t.stores.kv);
    t.stores.kv.zAddMany = async () => {
      throw new Error("connect ECONNREFUSED");
    };
    await expect(liveness().flushScores()).rejects.toThrow("ECONNREFUSED");
    t.stores.kv.zAddMany = zAddMany;
    await liveness().flushScores();
    const [score] = await new LivenessSet(t.stores.kv).scores([creds.host.id]);
    expect(score).toBe(clock.now().getTime());
  });

  it("does not count a host silent while its latest beat waits in a batch", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    await t.runtime.deps.liveness.stop();
    clock.advance(offlineAfterMs() - 100);
    await f.heartbeat(creds);
    clock.advance(101);
    // Another process sweeps: it cannot see this process's batch, only the allowance for it.
    const elsewhere = new Liveness(t.runtime.deps, "elsewhere", new Date(0));
    await elsewhere.sweepOnce();
    await elsewhere.stop();
    expect((await status(creds.host.id)).status).toBe("online");
    expect(await f.auditOf(creds.host.id, "host.offline")).toHaveLength(0);
  });

  it("brings back online a host whose batched beat finds it swept out of the liveness set", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(pastDeadline());
    // This process's loops stop (stopping flushes), so the next beat waits in its batch while another process sweeps.
    await t.runtime.deps.liveness.stop();
    await f.heartbeat(creds);
    const elsewhere = new Liveness(t.runtime.deps, "elsewhere", new Date(0));
    await elsewhere.sweepOnce();
    await elsewhere.stop();
    expect((await status(creds.host.id)).status).toBe("offline");

    await liveness().flushScores();
    expect((await status(creds.host.id)).status).toBe("online");
    expect(await f.auditOf(creds.host.id, "host.online")).toHaveLength(2);
  });

  it("records the host's clock skew from the agent's clock header; writes a move of a second or more at once, ignores an unreadable reading", async () => {
    const creds = await f.enrolledHost();
    const beatAt = (offsetMs: number | string) =>
      t.http.post(`/v1/hosts/${creds.host.id}/heartbeat`, {
        hostToken: creds.token,
        headers: { "x-muster-agent-clock": typeof offsetMs === "string" ? offsetMs : new Date(clock.now().getTime() + offsetMs).toISOString() },
      });
    const skew = async () => (await status(creds.host.id)).clock_skew_ms;
    expect(await skew()).toBeNull();

    expect((await beatAt(45_000)).status).toBe(204);
    await liveness().flush();
    expect(await skew()).toBe(45_000);

    clock.advance(1000);
    await beatAt(45_400);
    await liveness().flush();
    expect(await skew()).toBe(45_000);

    clock.advance(1000);
    await beatAt(-120_000);
    await liveness().flush();
    expect(await skew()).toBe(-120_000);

    clock.advance(BEAT_PERSIST_MS);
    for (const reading of ["yesterday", "", "9999999-01-01T00:00:00Z"]) expect((await beatAt(reading)).status).toBe(204);
    await liveness().flush();
    expect(await skew()).toBe(-120_000);
  });

  it("marks a silent host offline past its deadline (and the allowance for batched beats), not before, and only once", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(pastDeadline() - 1);
    await liveness().sweepOnce();
    expect((await status(creds.host.id)).status).toBe("online");

    clock.advance(1);
    await liveness().sweepOnce();
    await liveness().sweepOnce();
    expect((await status(creds.host.id)).status).toBe("offline");
    const offline = await f.auditOf(creds.host.id, "host.offline");
    expect(offline).toHaveLength(1);
    expect(offline[0]!.actor).toBe("system");
  });

  it("brings an offline host back online at its next heartbeat", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(pastDeadline());
    await liveness().sweepOnce();
    expect((await status(creds.host.id)).status).toBe("offline");
    await f.heartbeat(creds);
    expect((await status(creds.host.id)).status).toBe("online");
    expect(await f.auditOf(creds.host.id, "host.online")).toHaveLength(2);
  });

  it("keeps a host online when its beat lands between the sweeper's two steps", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(pastDeadline());
    // A sweeper whose KV answers, then lets the host beat (at a process that has not seen it yet) before the database write.
    const claims = await t.runtime.deps.hostTokens.verify(creds.token);
    const newcomer = new Liveness(t.runtime.deps, "newcomer", new Date(0));
    const racingKv: Kv = Object.create(t.stores.kv) as Kv;
    racingKv.zPopUpTo = async (key, max, limit) => {
      const due = await t.stores.kv.zPopUpTo(key, max, limit);
      if (due.some((entry) => entry.member === creds.host.id)) await newcomer.heartbeat(claims, creds.host.id, {});
      return due;
    };
    const sweeper = new Liveness({ ...t.runtime.deps, kv: racingKv }, "racer", new Date(0));
    await t.runtime.deps.liveness.stop();
    await sweeper.sweepOnce();
    await sweeper.stop();
    expect((await status(creds.host.id)).status).toBe("online");
    expect(await f.auditOf(creds.host.id, "host.offline")).toHaveLength(0);
    const [score] = await new LivenessSet(t.stores.kv).scores([creds.host.id]);
    expect(score).toBe(clock.now().getTime());
  });

  it("gives hosts the KV store lost one full window after start-up before marking them offline", async () => {
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    await liveness().flush();
    // The store lost its data: the host's entry, and with it the serving period and when it was last seen.
    await new LivenessSet(t.stores.kv).remove(creds.host.id);
    await t.stores.kv.del([SERVING_SINCE_KEY, SERVING_SEEN_KEY]);
    clock.advance(offlineAfterMs() * 3);

    const restarted = new Liveness(t.runtime.deps, "restarted", clock.now());
    await t.runtime.deps.liveness.stop();
    await restarted.sweepOnce();
    expect((await status(creds.host.id)).status).toBe("online");

    clock.advance(offlineAfterMs());
    await restarted.sweepOnce();
    expect((await status(creds.host.id)).status).toBe("offline");
    expect(await f.auditOf(creds.host.id, "host.offline")).toHaveLength(1);
    await restarted.stop();
  });

  it("lets one sweeper at a time work, and another take over when the holder's lease lapses", async () => {
    const holder = new Liveness(t.runtime.deps, "holder", new Date(0));
    const standby = new Liveness(t.runtime.deps, "standby", new Date(0));
    await t.runtime.deps.liveness.stop();
    const creds = await f.enrolledHost();
    await f.heartbeat(creds);
    clock.advance(offlineAfterMs() - 1000);
    expect(await holder.sweepOnce()).toBe(0);

    clock.advance(1001);
    expect(await standby.sweepOnce()).toBe(0);
    expect((await status(creds.host.id)).status).toBe("online");

    // The holder dies without handing over; its lease runs out within seconds.
    clock.advance(5000);
    expect(await standby.sweepOnce()).toBe(1);
    expect((await status(creds.host.id)).status).toBe("offline");
    await standby.stop();
  });

  it("refuses a heartbeat for another host's path with 403", async () => {
    const a = await f.enrolledHost();
    const b = await f.enrolledHost();
    const res = await t.http.post(`/v1/hosts/${b.host.id}/heartbeat`, { hostToken: a.token });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
  });
});

describe("two control planes on one database and KV store, in real time", () => {
  const fast = { heartbeatIntervalS: 1, offlineAfterS: 2, sweepIntervalMs: 200, heartbeatFlushMs: 200 };
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await startTestApp({ config: fast, startLoops: true });
    b = await startTestApp({ config: fast, stores: a.stores, startLoops: true });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  /** Polls `check` until it holds or `ms` pass; returns whether it held. */
  async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      if (await check()) return true;
      if (Date.now() > until) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("refuses a re-registered, reused or deleted host's old token within 1 s on the other control plane", async () => {
    const fa = new Factories(a);
    const fb = new Factories(b);
    const creds = await fa.enrolledHost();
    expect((await fb.heartbeat(creds)).status).toBe(204);

    // Re-registered through plane A: B must drop the family it cached.
    const token = await a.http.post(`/v1/hosts/${creds.host.id}/token`, { key: a.adminKey });
    const second = await fa.register(token.body.registration_token);
    expect(await within(1000, async () => (await fb.heartbeat(creds)).status === 401)).toBe(true);
    expect((await fb.heartbeat(second)).status).toBe(204);

    // A refresh token replayed through A revokes the family; B refuses the rotated token.
    const rotated = await a.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: second.refresh_token } });
    expect((await fb.heartbeat(rotated.body)).status).toBe(204);
    expect((await a.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: second.refresh_token } })).status).toBe(401);
    expect(await within(1000, async () => (await fb.heartbeat(rotated.body)).status === 401)).toBe(true);

    // Deleted through A: B answers 404 so the agent wipes its credentials.
    const third = await fa.enrolledHost();
    expect((await fb.heartbeat(third)).status).toBe(204);
    expect((await a.http.delete(`/v1/hosts/${third.host.id}`, { key: a.adminKey })).status).toBe(204);
    expect(await within(1000, async () => (await fb.heartbeat(third)).status === 404)).toBe(true);
  });

  it("marks each silent host offline once, with one audit entry, within 2 s of its deadline", async () => {
    const fa = new Factories(a);
    const fb = new Factories(b);
    const fleet: HostCredentials[] = [];
    for (let i = 0; i < 6; i++) fleet.push(await fa.enrolledHost());
    const planeFor = (i: number) => (i % 2 === 0 ? fa : fb);
    const silenced = fleet.slice(0, 4);
    const alive = fleet.slice(4);
    const lastBeat = new Map<string, number>();
    for (const [i, creds] of fleet.entries()) {
      expect((await planeFor(i).heartbeat(creds)).status).toBe(204);
      lastBeat.set(creds.host.id, Date.now());
    }

    // Keep two hosts beating (through both planes) while the other four fall silent.
    const deadline = Date.now() + 2000 * 3;
    let offline: string[] = [];
    for (let round = 0; Date.now() < deadline && offline.length < silenced.length; round++) {
      for (const [i, creds] of alive.entries()) expect((await planeFor(i + round).heartbeat(creds)).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 250));
      const list = await a.http.get("/v1/hosts?status=offline&limit=500", { key: a.adminKey });
      offline = (list.body.items as { id: string }[]).map((h) => h.id).filter((id) => lastBeat.has(id));
    }

    expect(offline.sort()).toEqual(silenced.map((c) => c.host.id).sort());
    for (const creds of silenced) {
      const entries = await fa.auditOf(creds.host.id, "host.offline");
      expect(entries).toHaveLength(1);
      const markedAt = Date.parse((entries[0] as unknown as { created_at: string }).created_at);
      const dueAt = lastBeat.get(creds.host.id)! + fast.offlineAfterS * 1000;
      expect(markedAt).toBeGreaterThanOrEqual(dueAt - 50);
      expect(markedAt - dueAt).toBeLessThanOrEqual(2000);
    }
    for (const creds of alive) {
      expect(await fa.auditOf(creds.host.id, "host.offline")).toHaveLength(0);
      // The second plane shares the first one's database, so the first one's admin key works on both.
      expect((await b.http.get(`/v1/hosts/${creds.host.id}`, { key: a.adminKey })).body.status).toBe("online");
    }
  });
});
