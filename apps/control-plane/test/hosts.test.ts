import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";
import type { CallResult } from "./support/http.js";

let t: TestApp;
let f: Factories;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
});
afterAll(() => t.close());

/** A tag no other test uses, so list filters see only this test's hosts. */
const uniqueTag = () => `t-${randomBytes(4).toString("hex")}`;
const HOST_ID = /^host-[a-z2-7]{26}$/;

function expectError(res: CallResult, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
}

/** Every host the admin sees with the given filters, following next_cursor to the end. */
async function listAll(query: Record<string, string> = {}, limit = 500): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ ...query, limit: String(limit), ...(cursor ? { cursor } : {}) });
    const res: CallResult = await t.http.get(`/v1/hosts?${params}`, { key: t.adminKey });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(limit);
    items.push(...res.body.items);
    cursor = res.body.next_cursor;
  } while (cursor);
  return items;
}

/** Exactly these items, in any order (hosts made in one instant of the fake clock list in ID order). */
const unordered = (items: string[]) => expect.toSatisfy((actual: string[]) => actual.length === items.length && items.every((i) => actual.includes(i)));

const listedIds = async (query: Record<string, string>) => (await listAll(query)).map((host) => host.id);

const tagsOf = async (hostId: string) => {
  const res = await t.http.get(`/v1/hosts/${hostId}/tags`, { key: t.adminKey });
  expect(res.status).toBe(200);
  return res.body as string[];
};
const addTag = (hostId: string, tag: string) => t.http.post(`/v1/hosts/${hostId}/tags`, { key: t.adminKey, body: { tag } });
const removeTag = (hostId: string, tag: string) => t.http.delete(`/v1/hosts/${hostId}/tags/${encodeURIComponent(tag)}`, { key: t.adminKey });

describe("host IDs", () => {
  it("are 'host-' and 26 random base32 characters, distinct across many hosts", async () => {
    const created = await Promise.all(Array.from({ length: 40 }, () => f.regularHost()));
    const ids = created.map(({ host }) => host.id);
    for (const id of ids) expect(id).toMatch(HOST_ID);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("tags", () => {
  it("may be given at creation and are listed", async () => {
    const tags = ["zone:eu-1", "gpu", "rack_7.a=b"];
    const { host } = await f.regularHost({ tags });
    expect([...host.tags].sort()).toEqual([...tags].sort());
    expect((await tagsOf(host.id)).sort()).toEqual([...tags].sort());
  });

  it("accept 1 and 63 characters", async () => {
    const { host } = await f.regularHost({ tags: ["a", "b".repeat(63)] });
    expect(host.tags).toHaveLength(2);
    expect((await addTag(host.id, `9${"c".repeat(62)}`)).status).toBe(204);
  });

  it("are validated at creation: a bad tag is 400 and creates nothing", async () => {
    const invalidTagLists = [["Prod"], ["a".repeat(64)], ["-lead"], [""], ["sp ace"], Array.from({ length: 65 }, (_, i) => `tag-${i}`)];
    const before = (await listAll()).length;
    for (const tags of invalidTagLists) {
      const res = await t.http.post("/v1/hosts", { key: t.adminKey, body: { type: "regular", tags } });
      expectError(res, 400, "invalid_request");
      expect(res.body.error.message).toContain("tags");
    }
    expect((await listAll()).length).toBe(before);
  });

  it("are validated when added: a bad tag is 400 and changes nothing", async () => {
    const { host } = await f.regularHost({ tags: ["keep"] });
    for (const tag of ["Prod", "a".repeat(64), "-lead", ""]) {
      const res = await addTag(host.id, tag);
      expectError(res, 400, "invalid_request");
      expect(res.body.error.message).toContain("tag");
    }
    expect(await tagsOf(host.id)).toEqual(["keep"]);
  });

  it("added twice is one tag and one host.tag_added entry", async () => {
    const { host } = await f.regularHost();
    expect((await addTag(host.id, "twice")).status).toBe(204);
    expect((await addTag(host.id, "twice")).status).toBe(204);
    expect(await tagsOf(host.id)).toEqual(["twice"]);
    const entries = await f.auditOf(host.id, "host.tag_added");
    expect(entries).toHaveLength(1);
    expect(entries[0]!.metadata).toEqual({ tag: "twice" });
  });

  it("removed is gone and audited as host.tag_removed; removing an absent tag is a quiet 204", async () => {
    const { host } = await f.regularHost({ tags: ["stay", "go"] });
    expect((await removeTag(host.id, "go")).status).toBe(204);
    expect(await tagsOf(host.id)).toEqual(["stay"]);
    expect((await removeTag(host.id, "go")).status).toBe(204);
    expect((await removeTag(host.id, "never-there")).status).toBe(204);
    expect(await tagsOf(host.id)).toEqual(["stay"]);
    const entries = await f.auditOf(host.id, "host.tag_removed");
    expect(entries).toHaveLength(1);
    expect(entries[0]!.metadata).toEqual({ tag: "go" });
  });

  it("are capped at 64 per host: a 65th is 409, re-adding one of the 64 still 204", async () => {
    const tags = Array.from({ length: 64 }, (_, i) => `cap-${i}`);
    const { host } = await f.regularHost({ tags });
    expectError(await addTag(host.id, "one-too-many"), 409, "conflict");
    expect((await addTag(host.id, "cap-0")).status).toBe(204);
    expect(await tagsOf(host.id)).toHaveLength(64);
    expect(await tagsOf(host.id)).not.toContain("one-too-many");
  });
});

describe("host list", () => {
  it("filters by status", async () => {
    const tag = uniqueTag();
    const pending = (await f.regularHost({ tags: [tag] })).host;
    const created = await f.regularHost({ tags: [tag] });
    const creds = await f.register(created.registration_token);
    expect((await f.heartbeat(creds)).status).toBe(204);

    expect(await listedIds({ tag, status: "pending" })).toEqual([pending.id]);
    expect(await listedIds({ tag, status: "online" })).toEqual([created.host.id]);
    expect(await listedIds({ tag, status: "offline" })).toEqual([]);
  });

  it("filters by type, tag and team", async () => {
    const tag = uniqueTag();
    const [a, b] = [await f.team(), await f.team()];
    const regular = (await f.regularHost({ tags: [tag] })).host;
    const inA = (await f.host(t.adminKey, { type: "byoc", team_id: a.team.id, tags: [tag] })).host;
    const inB = (await f.host(t.adminKey, { type: "byoc", team_id: b.team.id, tags: [tag] })).host;
    const untagged = (await f.host(t.adminKey, { type: "byoc", team_id: a.team.id })).host;

    expect(await listedIds({ tag })).toEqual(unordered([regular.id, inA.id, inB.id]));
    expect(await listedIds({ tag, type: "regular" })).toEqual([regular.id]);
    expect(await listedIds({ tag, type: "byoc" })).toEqual(unordered([inA.id, inB.id]));
    expect(await listedIds({ team_id: a.team.id })).toEqual(unordered([inA.id, untagged.id]));
    expect(await listedIds({ team_id: a.team.id, tag })).toEqual([inA.id]);
    for (const host of await listAll({ type: "regular" })) expect(host).toMatchObject({ type: "regular", team_id: null });
  });

  it("finds hosts by the start of their hostname, letter case aside, with % and _ taken literally", async () => {
    const tag = uniqueTag();
    const prefix = `web-${randomBytes(3).toString("hex")}`;
    const named = async (hostname: string) => (await f.register((await f.regularHost({ tags: [tag] })).registration_token, { hostname })).host.id;
    const [one, two, percent, other] = [await named(`${prefix}-1.eu`), await named(`${prefix.toUpperCase()}-2`), await named(`${prefix}%x`), await named(`db-${prefix}`)];

    expect(await listedIds({ tag, hostname: prefix })).toEqual(unordered([one, two, percent]));
    expect(await listedIds({ tag, hostname: `${prefix}-1` })).toEqual([one]);
    expect(await listedIds({ tag, hostname: `${prefix}%` })).toEqual([percent]);
    expect(await listedIds({ tag, hostname: `${prefix}_1` })).toEqual([]);
    expect(await listedIds({ tag, hostname: "db-" })).toEqual([other]);
  });

  it("pages through every host once, in creation order, by next_cursor", async () => {
    const tag = uniqueTag();
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      created.push((await f.regularHost({ tags: [tag] })).host.id);
      clock.advance(1_000);
    }
    const pageSizes: number[] = [];
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: CallResult = await t.http.get(`/v1/hosts?limit=2&tag=${tag}${cursor ? `&cursor=${cursor}` : ""}`, { key: t.adminKey });
      expect(res.status).toBe(200);
      pageSizes.push(res.body.items.length);
      seen.push(...res.body.items.map((host: { id: string }) => host.id));
      cursor = res.body.next_cursor;
    } while (cursor !== null && pageSizes.length < 10);
    expect(pageSizes).toEqual([2, 2, 1]);
    expect(seen).toEqual(created);
  });

  it("pages hosts created in the same instant without loss or repetition", async () => {
    const tag = uniqueTag();
    const created = await Promise.all(Array.from({ length: 7 }, () => f.regularHost({ tags: [tag] })));
    const seen = (await listAll({ tag }, 2)).map((host) => host.id);
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(new Set(created.map(({ host }) => host.id)));
  });

  it("refuses a limit outside 1–500 (400)", async () => {
    for (const limit of ["0", "501", "-1", "two"]) {
      const res = await t.http.get(`/v1/hosts?limit=${limit}`, { key: t.adminKey });
      expectError(res, 400, "invalid_request");
      expect(res.body.error.message).toContain("limit");
    }
    for (const limit of ["1", "500"]) expect((await t.http.get(`/v1/hosts?limit=${limit}`, { key: t.adminKey })).status).toBe(200);
  });

  const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  /** The status of a host list request with each cursor, keyed by what the cursor is. */
  async function statusesFor(cursors: Record<string, string>) {
    const statuses: Record<string, number> = {};
    for (const [what, cursor] of Object.entries(cursors)) {
      const res = await t.http.get(`/v1/hosts?cursor=${encodeURIComponent(cursor)}`, { key: t.adminKey });
      statuses[what] = res.status;
      if (res.status === 400) expect(res.body.error).toMatchObject({ code: "invalid_request", message: expect.stringContaining("cursor") });
    }
    return statuses;
  }
  const allRefused = (cursors: Record<string, string>) => Object.fromEntries(Object.keys(cursors).map((what) => [what, 400]));

  it("refuses a garbage cursor (400)", async () => {
    const cursors = {
      "not base64url": "garbage!",
      "not JSON": "bm90IGpzb24",
      "an object": forged({ at: "2026-01-01T00:00:00.000Z", id: "host-x" }),
      "no date": forged(["not a date", "host-x"]),
      "a numeric id": forged(["2026-01-01T00:00:00.000Z", 42]),
    };
    expect(await statusesFor(cursors)).toEqual(allRefused(cursors));
  });

  it("refuses a well-formed cursor whose values the database cannot hold (400, not 500)", async () => {
    const cursors = {
      "a date before PostgreSQL's range": forged(["-271821-04-20T00:00:00.000Z", `host-${"a".repeat(26)}`]),
      "a NUL byte in the id": forged(["2026-01-01T00:00:00.000Z", "host-\u0000"]),
    };
    expect(await statusesFor(cursors)).toEqual(allRefused(cursors));
  });
});

describe("one host", () => {
  const HOST_FIELDS = [
    "id", "type", "team_id", "provider", "availability_zone", "arch", "cpu_cores", "memory_mb", "disk_gb", "address",
    "hostname", "os", "agent_version", "status", "tags", "last_heartbeat_at", "created_by", "created_at", "updated_at",
  ];

  it("carries every field SPEC §4 names", async () => {
    const { host: created } = await f.regularHost({ provider: "aws", availability_zone: "eu-west-1a", tags: ["x"] });
    const res = await t.http.get(`/v1/hosts/${created.id}`, { key: t.adminKey });
    expect(res.status).toBe(200);
    for (const field of HOST_FIELDS) expect(res.body, field).toHaveProperty(field);
    const me = (await t.http.get("/v1/me", { key: t.adminKey })).body;
    expect(res.body).toMatchObject({
      id: created.id,
      type: "regular",
      team_id: null,
      provider: "aws",
      availability_zone: "eu-west-1a",
      arch: null,
      status: "pending",
      tags: ["x"],
      last_heartbeat_at: null,
      created_by: me.user.id,
      created_at: clock.now().toISOString(),
    });
  });

  it("is not found once deleted, and a second delete is 404", async () => {
    const { host } = await f.regularHost();
    expect((await t.http.delete(`/v1/hosts/${host.id}`, { key: t.adminKey })).status).toBe(204);
    expectError(await t.http.get(`/v1/hosts/${host.id}`, { key: t.adminKey }), 404, "not_found");
    expectError(await t.http.delete(`/v1/hosts/${host.id}`, { key: t.adminKey }), 404, "not_found");
    expect(await listedIds({ type: "regular" })).not.toContain(host.id);
  });

  /** Each acting user: the key they use, the body of a host they may create, and their user ID. */
  const actors = [
    {
      who: "an admin",
      setup: async () => ({ key: t.adminKey, body: { type: "regular" }, userId: (await t.http.get("/v1/me", { key: t.adminKey })).body.user.id }),
    },
    {
      who: "a team owner",
      setup: async () => {
        const { owner } = await f.team();
        return { key: owner.key, body: { type: "byoc" }, userId: owner.user.id };
      },
    },
  ];

  for (const { who, setup } of actors) {
    it(`writes host.created, host.token_regenerated and host.deleted with ${who} as actor`, async () => {
      const { key, body, userId } = await setup();
      const { host } = await f.host(key, body);
      expect((await t.http.post(`/v1/hosts/${host.id}/token`, { key })).status).toBe(201);
      expect((await t.http.delete(`/v1/hosts/${host.id}`, { key })).status).toBe(204);

      const entries = await f.auditOf(host.id);
      expect(entries.map((e) => e.action).sort()).toEqual(["host.created", "host.deleted", "host.token_regenerated"]);
      for (const entry of entries) expect(entry.actor).toBe(userId);
    });
  }
});
