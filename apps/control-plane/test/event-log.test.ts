import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import type { Host } from "@muster/contract";
import type { Tx } from "../src/db/client.js";
import { EVENTS_PER_TX, readReadyEvents, recordEvents, type NewEvent } from "../src/services/events.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { EventStream } from "./support/events.js";
import { storageMode } from "./support/stores.js";

/**
 * The log's one promise to readers: a reader that takes events after the
 * last one it saw never skips one, whatever order their transactions commit
 * in. On PostgreSQL two transactions commit out of order while a reader
 * tails the log; PGlite has one session, so there the test shows that a
 * second transaction cannot write until the first has ended.
 */
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
  await t.runtime.deps.events.start();
});
afterAll(() => t.close());

function event(hostId: string): NewEvent {
  return { type: "host.created", teamId: null, hostId, tags: [], data: { id: hostId } as Host };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** A transaction that writes when told, then waits to be told to commit; `before` runs first (taking an xid early). */
function heldTransaction(hostId: string, options: { before?: (tx: Tx) => Promise<void>; writeWhen?: Promise<void> } = {}) {
  const wrote = gate();
  const commit = gate();
  const started = gate();
  const done = t.runtime.deps.db.transaction(async (tx) => {
    started.open();
    await options.before?.(tx);
    await options.writeWhen;
    await recordEvents(tx, t.runtime.deps, [event(hostId)]);
    wrote.open();
    await commit.opened;
  });
  return { started: started.opened, wrote: wrote.opened, commit: commit.open, done };
}

/** A tailing reader: takes the ready events after its cursor, as the stream hub does. */
function tail() {
  let cursor = 0n;
  const seen: string[] = [];
  const read = async () => {
    const { events } = await readReadyEvents(t.runtime.deps.db, cursor, 1000);
    for (const e of events) {
      cursor = e.position;
      seen.push(e.hostId);
    }
    return events.map((e) => e.hostId);
  };
  return {
    seen,
    read,
    /** Skips what the log already holds. */
    async start() {
      while ((await read()).length > 0);
      seen.length = 0;
    },
  };
}

const unique = () => `host-${Math.random().toString(36).slice(2, 8).padEnd(6, "a")}${"a".repeat(20)}`;

describe("out-of-order commits", () => {
  if (storageMode === "postgres") {
    it("a later transaction committing first is not handed out until the earlier one ends; the reader skips nothing", async () => {
      const reader = tail();
      await reader.start();
      const stream = await EventStream.open(t, { key: t.adminKey });
      const [first, second] = [unique(), unique()];

      const a = heldTransaction(first);
      await a.wrote;
      const b = heldTransaction(second);
      await b.wrote;
      b.commit();
      await b.done;
      // B is committed and visible, but A (an older transaction) is still running: nothing is ready.
      expect(await reader.read()).toEqual([]);
      a.commit();
      await a.done;
      expect(await reader.read()).toEqual([first, second]);
      expect((await stream.waitFor(2)).map((e) => e.host_id)).toEqual([first, second]);
      await stream.close();
    });

    it("a transaction that took its ID first but writes its event last still comes first, and is waited for", async () => {
      const reader = tail();
      await reader.start();
      const stream = await EventStream.open(t, { key: t.adminKey });
      const [early, late] = [unique(), unique()];
      const writeEarly = gate();

      // `early` takes its transaction ID now and writes its event only after `late` has committed.
      const e = heldTransaction(early, { before: async (tx) => void (await tx.execute(sql`select pg_current_xact_id()`)), writeWhen: writeEarly.opened });
      await e.started;
      await new Promise((resolve) => setTimeout(resolve, 50));
      const l = heldTransaction(late);
      await l.wrote;
      l.commit();
      await l.done;
      expect(await reader.read()).toEqual([]);

      writeEarly.open();
      await e.wrote;
      e.commit();
      await e.done;
      // A reader ordered by insertion would have handed out `late` and then skipped `early`: here `early` comes first.
      expect(await reader.read()).toEqual([early, late]);
      expect((await stream.waitFor(2)).map((event) => event.host_id)).toEqual([early, late]);
      expect(reader.seen).toEqual([early, late]);
      await stream.close();
    });

    it("a stream from now gets what an older running transaction commits after it opened, not what was committed before it and held back", async () => {
      const [running, committed, later] = [unique(), unique(), unique()];
      const a = heldTransaction(running);
      await a.wrote;
      const b = heldTransaction(committed);
      await b.wrote;
      b.commit();
      await b.done;
      const stream = await EventStream.open(t, { key: t.adminKey });
      a.commit();
      await a.done;
      const c = heldTransaction(later);
      c.commit();
      await c.done;
      expect((await stream.waitFor(2)).map((event) => event.host_id)).toEqual([running, later]);
      await stream.close();
    });
  } else {
    it("the embedded database runs one transaction at a time, so commits cannot come out of order", async () => {
      const reader = tail();
      await reader.start();
      const stream = await EventStream.open(t, { key: t.adminKey });
      const [first, second] = [unique(), unique()];

      const a = heldTransaction(first);
      await a.wrote;
      const b = heldTransaction(second);
      let bWrote = false;
      void b.wrote.then(() => (bWrote = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(bWrote).toBe(false);
      a.commit();
      await a.done;
      await b.wrote;
      b.commit();
      await b.done;
      expect(await reader.read()).toEqual([first, second]);
      expect((await stream.waitFor(2)).map((e) => e.host_id)).toEqual([first, second]);
      await stream.close();
    });
  }
});

describe("positions", () => {
  it("increase across transactions and within one, in the order events were written", async () => {
    const reader = tail();
    await reader.start();
    const ids = [unique(), unique(), unique()];
    await t.runtime.deps.db.transaction(async (tx) => {
      await recordEvents(tx, t.runtime.deps, [event(ids[0]!)]);
      await recordEvents(tx, t.runtime.deps, [event(ids[1]!), event(ids[2]!)]);
    });
    const later = unique();
    await t.runtime.deps.db.transaction((tx) => recordEvents(tx, t.runtime.deps, [event(later)]));
    expect(await reader.read()).toEqual([...ids, later]);
  });

  it("a transaction writing more events than a position block holds is refused and writes none", async () => {
    const reader = tail();
    await reader.start();
    const many = Array.from({ length: EVENTS_PER_TX + 1 }, () => event("host-aaaaaaaaaaaaaaaaaaaaaaaaaa"));
    await expect(t.runtime.deps.db.transaction((tx) => recordEvents(tx, t.runtime.deps, many))).rejects.toThrow(/at most 65536 events/);
    expect(await reader.read()).toEqual([]);
  });
});
