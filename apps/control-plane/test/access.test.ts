import { randomBytes } from "node:crypto";
import { routes, type Host, type RouteDef } from "@muster/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, type TeamFixture } from "./support/factories.js";
import type { CallResult } from "./support/http.js";

let t: TestApp;
let f: Factories;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  await t.runtime.deps.events.start();
  f = new Factories(t);
});
afterAll(() => t.close());

const unique = () => randomBytes(4).toString("hex");
/** A well-formed ID that names nothing. */
const absentUserId = `usr-${"a".repeat(26)}`;

/** Every item of a list endpoint, following next_cursor to the end. */
async function listAll<T = any>(path: string, key: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const res: CallResult = await t.http.get(`${path}${sep}limit=500${cursor ? `&cursor=${cursor}` : ""}`, { key });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.next_cursor;
  } while (cursor);
  return items;
}

const ids = (items: { id: string }[]) => items.map((item) => item.id);

function expectError(res: CallResult, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
}

/** A new key made by a user's own key (for themselves, in the team it acts in): its id and secret. */
async function ownKey(key: string, extra: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const res = await t.http.post("/v1/api-keys", { key, body: { name: `own-${unique()}`, ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.api_key.id, key: res.body.key };
}

const meStatus = async (key: string) => (await t.http.get("/v1/me", { key })).status;

describe("GET /v1/me", () => {
  it("names the admin key's user with role admin and no team", async () => {
    const res = await t.http.get("/v1/me", { key: t.adminKey });
    expect(res.status).toBe(200);
    expect(res.body.role).toBe("admin");
    expect(res.body.team).toBeNull();
    expect(res.body.user.is_admin).toBe(true);
  });

  it("names the team and role an owner's and a member's key act with", async () => {
    const team = await f.team();
    for (const role of ["owner", "member"] as const) {
      const res = await t.http.get("/v1/me", { key: team[role].key });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ role, team: { id: team.team.id, name: team.team.name }, user: { id: team[role].user.id } });
    }
  });
});

describe("users", () => {
  it("are created and listed by admins only", async () => {
    const team = await f.team();
    for (const role of ["owner", "member"] as const) {
      const { key } = team[role];
      expectError(await t.http.post("/v1/users", { key, body: { email: `x-${unique()}@example.test` } }), 403, "forbidden");
      expectError(await t.http.get("/v1/users", { key }), 403, "forbidden");
    }
    const created = await f.user();
    expect(ids(await listAll("/v1/users", t.adminKey))).toContain(created.id);
  });

  it("keep the email lowercased and refuse a duplicate in any case with 409", async () => {
    const local = `Mixed.Case-${unique()}`;
    const res = await t.http.post("/v1/users", { key: t.adminKey, body: { email: `${local}@Example.TEST` } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.user.email).toBe(`${local.toLowerCase()}@example.test`);

    const again = await t.http.post("/v1/users", { key: t.adminKey, body: { email: `${local.toLowerCase()}@example.test` } });
    expectError(again, 409, "conflict");
  });
});

describe("teams", () => {
  it("are created by admins only", async () => {
    const team = await f.team();
    for (const role of ["owner", "member"] as const) {
      expectError(await t.http.post("/v1/teams", { key: team[role].key, body: { name: `t-${unique()}` } }), 403, "forbidden");
    }
    const res = await t.http.post("/v1/teams", { key: t.adminKey, body: { name: `t-${unique()}` } });
    expect(res.status).toBe(201);
    expect(res.body.team.id).toMatch(/^team-[a-z2-7]{26}$/);
  });

  it("are all listed to admins, and to others only the teams they belong to", async () => {
    const [a, b] = [await f.team(), await f.team()];
    expect(ids(await listAll("/v1/teams", t.adminKey))).toEqual(expect.arrayContaining([a.team.id, b.team.id]));
    for (const [mine, other] of [[a, b], [b, a]] as const) {
      for (const role of ["owner", "member"] as const) {
        expect(ids(await listAll("/v1/teams", mine[role].key))).toEqual([mine.team.id]);
      }
      expect(ids(await listAll("/v1/teams", mine.member.key))).not.toContain(other.team.id);
    }
  });
});

describe("team members", () => {
  const addMember = (key: string, teamId: string, userId: string, role = "member") =>
    t.http.post(`/v1/teams/${teamId}/members`, { key, body: { user_id: userId, role } });
  const removeMember = (key: string, teamId: string, userId: string) => t.http.delete(`/v1/teams/${teamId}/members/${userId}`, { key });

  it("are added and removed by their team's owner", async () => {
    const { team, owner } = await f.team();
    const user = await f.user();
    const added = await addMember(owner.key, team.id, user.id);
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    expect(added.body.member).toMatchObject({ team_id: team.id, user_id: user.id, role: "member" });
    expect((await removeMember(owner.key, team.id, user.id)).status).toBe(204);
    expect(await f.auditOf(user.id, "member.removed")).toHaveLength(1);
  });

  it("cannot be managed by a member of the team (403)", async () => {
    const { team, member } = await f.team();
    const user = await f.user();
    expectError(await addMember(member.key, team.id, user.id), 403, "forbidden");
    expect((await addMember(t.adminKey, team.id, user.id)).status).toBe(201);
    expectError(await removeMember(member.key, team.id, user.id), 403, "forbidden");
  });

  it("of another team are not found for an owner (404)", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const user = await f.user();
    expectError(await addMember(a.owner.key, b.team.id, user.id), 404, "not_found");
    expectError(await removeMember(a.owner.key, b.team.id, b.member.user.id), 404, "not_found");
    expect(await meStatus(b.member.key)).toBe(200);
  });

  it("cannot lose the team's last owner (409)", async () => {
    const { team, owner } = await f.team();
    expectError(await removeMember(owner.key, team.id, owner.user.id), 409, "conflict");
    expectError(await removeMember(t.adminKey, team.id, owner.user.id), 409, "conflict");
    const second = await f.member(team.id, "owner");
    expect((await removeMember(second.key, team.id, owner.user.id)).status).toBe(204);
  });

  it("lose their API keys for the team when removed", async () => {
    const { team, owner, member } = await f.team();
    expect(await meStatus(member.key)).toBe(200);
    expect((await removeMember(owner.key, team.id, member.user.id)).status).toBe(204);
    expect(await meStatus(member.key)).toBe(401);
    // Back in the team, the old key stays dead: it was revoked, not merely orphaned.
    expect((await addMember(owner.key, team.id, member.user.id)).status).toBe(201);
    expect(await meStatus(member.key)).toBe(401);
  });

  it("are listed, oldest first and page by page, to admins and to the team's owners and members, never to another team", async () => {
    const { team, owner, member } = await f.team();
    const extra = await f.member(team.id, "member");
    const expected = [owner.user.id, member.user.id, extra.user.id];
    for (const key of [t.adminKey, owner.key, member.key]) {
      const listed = await listAll<{ user_id: string; created_at: string }>(`/v1/teams/${team.id}/members`, key);
      expect(listed.map((m) => m.user_id).sort()).toEqual([...expected].sort());
      const order = listed.map((m) => `${m.created_at} ${m.user_id}`);
      expect(order).toEqual([...order].sort());
    }
    const first = await t.http.get(`/v1/teams/${team.id}/members?limit=2`, { key: owner.key });
    expect(first.body.items).toHaveLength(2);
    const second = await t.http.get(`/v1/teams/${team.id}/members?limit=2&cursor=${first.body.next_cursor}`, { key: owner.key });
    expect(second.body.next_cursor).toBeNull();
    expect([...first.body.items, ...second.body.items].map((m: { user_id: string }) => m.user_id).sort()).toEqual([...expected].sort());
    const other = await f.team();
    expectError(await t.http.get(`/v1/teams/${team.id}/members`, { key: other.owner.key }), 404, "not_found");
    expectError(await t.http.get(`/v1/teams/team-${"a".repeat(26)}/members`, { key: t.adminKey }), 404, "not_found");
  });

  it("refuses an existing member (409) and an unknown user (404)", async () => {
    const { team, owner, member } = await f.team();
    expectError(await addMember(owner.key, team.id, member.user.id, "owner"), 409, "conflict");
    expectError(await addMember(owner.key, team.id, absentUserId), 404, "not_found");
  });
});

describe("API keys", () => {
  it("show the secret only in the creation response", async () => {
    const { owner } = await f.team();
    const res = await t.http.post("/v1/api-keys", { key: owner.key, body: { name: `k-${unique()}` } });
    expect(res.status).toBe(201);
    const { key, api_key } = res.body;
    expect(key.startsWith(api_key.start)).toBe(true);
    expect(api_key.start.length).toBeLessThan(key.length);
    expect(JSON.stringify(api_key)).not.toContain(key);
    for (const reader of [owner.key, t.adminKey]) {
      const listed = await listAll("/v1/api-keys", reader);
      expect(ids(listed)).toContain(api_key.id);
      expect(JSON.stringify(listed)).not.toContain(key);
      for (const item of listed) expect(item).not.toHaveProperty("key");
    }
  });

  it("are stored only as a hash", async () => {
    const { owner } = await f.team();
    const { key } = await ownKey(owner.key);
    const rows = await t.stores.database.db.query.apiKeys.findMany();
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain(key);
  });

  it("are created by non-admins only for themselves in their own team", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const tries = [
      { key: a.owner.key, body: { user_id: a.member.user.id } },
      { key: a.member.key, body: { user_id: a.owner.user.id } },
      { key: a.owner.key, body: { user_id: b.owner.user.id, team_id: b.team.id } },
      { key: a.owner.key, body: { team_id: b.team.id } },
    ];
    for (const { key, body } of tries) {
      expectError(await t.http.post("/v1/api-keys", { key, body: { name: `k-${unique()}`, ...body } }), 403, "forbidden");
    }
    for (const role of ["owner", "member"] as const) {
      const res = await t.http.post("/v1/api-keys", { key: a[role].key, body: { name: `k-${unique()}`, team_id: a.team.id } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.api_key).toMatchObject({ user_id: a[role].user.id, team_id: a.team.id });
      expect((await t.http.get("/v1/me", { key: res.body.key })).body.role).toBe(role);
    }
  });

  it("are all listed to admins, and to others only their own", async () => {
    const { owner, member } = await f.team();
    const everyone = (await listAll("/v1/api-keys", t.adminKey)).map((k) => k.user_id);
    expect(everyone).toEqual(expect.arrayContaining([owner.user.id, member.user.id]));
    for (const { user, key } of [owner, member]) {
      const mine = await listAll("/v1/api-keys", key);
      expect(mine.length).toBeGreaterThan(0);
      expect(new Set(mine.map((k) => k.user_id))).toEqual(new Set([user.id]));
    }
  });

  it("revoked by their own user die at once", async () => {
    const { member } = await f.team();
    const extra = await ownKey(member.key);
    expect(await meStatus(extra.key)).toBe(200);
    expect((await t.http.delete(`/v1/api-keys/${extra.id}`, { key: member.key })).status).toBe(204);
    expectError(await t.http.get("/v1/me", { key: extra.key }), 401, "unauthorized");
    expect(ids(await listAll("/v1/api-keys", member.key))).not.toContain(extra.id);
    expect(await f.auditOf(extra.id, "api_key.revoked")).toHaveLength(1);
  });

  it("of a member can be revoked by their team's owner", async () => {
    const { owner, member } = await f.team();
    const target = await ownKey(member.key);
    expect((await t.http.delete(`/v1/api-keys/${target.id}`, { key: owner.key })).status).toBe(204);
    expect(await meStatus(target.key)).toBe(401);
  });

  it("of another member cannot be revoked by a member (403)", async () => {
    const { team, member } = await f.team();
    const other = await f.member(team.id, "member");
    const target = await ownKey(other.key);
    expectError(await t.http.delete(`/v1/api-keys/${target.id}`, { key: member.key }), 403, "forbidden");
    expect(await meStatus(target.key)).toBe(200);
  });

  it("of another team are not found (404)", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const target = await ownKey(b.member.key);
    for (const role of ["owner", "member"] as const) {
      const res = await t.http.delete(`/v1/api-keys/${target.id}`, { key: a[role].key });
      expectError(res, 404, "not_found");
      expect(JSON.stringify(res.body)).not.toContain(target.id);
    }
    expect(await meStatus(target.key)).toBe(200);
  });

  it("record last_used_at from their first use", async () => {
    const { team, member } = await f.team();
    const res = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: `k-${unique()}`, user_id: member.user.id, team_id: team.id } });
    expect(res.status).toBe(201);
    expect(res.body.api_key.last_used_at).toBeNull();
    const lastUsed = async () => (await listAll("/v1/api-keys", t.adminKey)).find((k) => k.id === res.body.api_key.id)!.last_used_at;
    expect(await lastUsed()).toBeNull();

    clock.advance(5_000);
    expect(await meStatus(res.body.key)).toBe(200);
    expect(await lastUsed()).toBe(clock.now().toISOString());
  });

  it("stop working once expired", async () => {
    const { team, member } = await f.team();
    const res = await t.http.post("/v1/api-keys", {
      key: t.adminKey,
      body: { name: `k-${unique()}`, user_id: member.user.id, team_id: team.id, expires_in_s: 60 },
    });
    expect(res.status).toBe(201);
    expect(Date.parse(res.body.api_key.expires_at) - clock.now().getTime()).toBe(60_000);
    expect(await meStatus(res.body.key)).toBe(200);
    clock.advance(60_000 + 1);
    expectError(await t.http.get("/v1/me", { key: res.body.key }), 401, "unauthorized");
    expect(await meStatus(member.key)).toBe(200);
  });
});

/** Every operator endpoint on one host, in an order that leaves DELETE last; `ok` is its success status. */
const hostCalls: { label: string; need: "read" | "manage"; ok: number; call: (hostId: string, key: string) => Promise<CallResult> }[] = [
  { label: "GET /v1/hosts/{id}", need: "read", ok: 200, call: (id, key) => t.http.get(`/v1/hosts/${id}`, { key }) },
  { label: "GET /v1/hosts/{id}/tags", need: "read", ok: 200, call: (id, key) => t.http.get(`/v1/hosts/${id}/tags`, { key }) },
  { label: "POST /v1/hosts/{id}/tags", need: "manage", ok: 204, call: (id, key) => t.http.post(`/v1/hosts/${id}/tags`, { key, body: { tag: "added" } }) },
  { label: "DELETE /v1/hosts/{id}/tags/{tag}", need: "manage", ok: 204, call: (id, key) => t.http.delete(`/v1/hosts/${id}/tags/seed`, { key }) },
  { label: "POST /v1/hosts/{id}/token", need: "manage", ok: 201, call: (id, key) => t.http.post(`/v1/hosts/${id}/token`, { key }) },
  { label: "DELETE /v1/hosts/{id}", need: "manage", ok: 204, call: (id, key) => t.http.delete(`/v1/hosts/${id}`, { key }) },
];

describe("hosts across teams", () => {
  const byocHost = async (team: TeamFixture) => (await f.host(team.owner.key, { type: "byoc", tags: ["seed"] })).host;

  /** The host is still there, untouched. */
  async function expectIntact(hostId: string) {
    const res = await t.http.get(`/v1/hosts/${hostId}`, { key: t.adminKey });
    expect(res.status).toBe(200);
    expect(res.body.tags).toEqual(["seed"]);
  }

  async function expectHidden(hostId: string, keys: string[]) {
    for (const key of keys) {
      for (const { label, call } of hostCalls) {
        const res = await call(hostId, key);
        expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(404);
        expect(res.body.error.code).toBe("not_found");
        expect(JSON.stringify(res.body), label).not.toContain(hostId);
      }
    }
    await expectIntact(hostId);
  }

  it("hides another team's BYOC host from every endpoint (404, the ID never echoed)", async () => {
    const [a, b] = [await f.team(), await f.team()];
    await expectHidden((await byocHost(a)).id, [b.owner.key, b.member.key]);
  });

  it("hides regular hosts from every team's owners and members (404)", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const { host } = await f.regularHost({ tags: ["seed"] });
    await expectHidden(host.id, [a.owner.key, a.member.key, b.owner.key, b.member.key]);
  });

  it("lists to a team only its own BYOC hosts", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const [hostA, hostB] = [await byocHost(a), await byocHost(b)];
    const { host: regular } = await f.regularHost();
    for (const role of ["owner", "member"] as const) {
      const seen = await listAll("/v1/hosts", b[role].key);
      expect(ids(seen)).toContain(hostB.id);
      expect(ids(seen)).not.toContain(hostA.id);
      expect(ids(seen)).not.toContain(regular.id);
      for (const host of seen) expect(host).toMatchObject({ type: "byoc", team_id: b.team.id });
      expect(await listAll(`/v1/hosts?team_id=${a.team.id}`, b[role].key)).toEqual([]);
      expect(await listAll("/v1/hosts?type=regular", b[role].key)).toEqual([]);
    }
  });

  it("lets a member read their team's host but not change it (403)", async () => {
    const team = await f.team();
    const host = await byocHost(team);
    for (const { label, need, ok, call } of hostCalls) {
      const res = await call(host.id, team.member.key);
      if (need === "read") expect(res.status, label).toBe(ok);
      else expectError(res, 403, "forbidden");
    }
    expect(ids(await listAll("/v1/hosts", team.member.key))).toContain(host.id);
    await expectIntact(host.id);
  });

  it("lets an owner run every operation on their team's host", async () => {
    const team = await f.team();
    const host = await byocHost(team);
    for (const { label, ok, call } of hostCalls) {
      const res = await call(host.id, team.owner.key);
      expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(ok);
    }
    expect((await t.http.get(`/v1/hosts/${host.id}`, { key: t.adminKey })).status).toBe(404);
  });

  it("refuses regular hosts to owners and members (403)", async () => {
    const team = await f.team();
    for (const role of ["owner", "member"] as const) {
      expectError(await t.http.post("/v1/hosts", { key: team[role].key, body: { type: "regular" } }), 403, "forbidden");
    }
  });

  it("refuses a member creating a BYOC host in their own team (403)", async () => {
    const team = await f.team();
    expectError(await t.http.post("/v1/hosts", { key: team.member.key, body: { type: "byoc" } }), 403, "forbidden");
  });

  it("hides another team from an owner creating a BYOC host (404)", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const res = await t.http.post("/v1/hosts", { key: a.owner.key, body: { type: "byoc", team_id: b.team.id } });
    expectError(res, 404, "not_found");
    expect(await listAll(`/v1/hosts?team_id=${b.team.id}`, t.adminKey)).toEqual([]);
  });

  it("needs a team_id for an admin's BYOC host (400)", async () => {
    const res = await t.http.post("/v1/hosts", { key: t.adminKey, body: { type: "byoc" } });
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toContain("team_id");
  });
});

describe("audit log", () => {
  const audit = (key: string, query: Record<string, string> = {}) => t.http.get(`/v1/audit?${new URLSearchParams(query)}`, { key });

  it("shows admins every team's entries and owners only their own team's", async () => {
    const [a, b] = [await f.team(), await f.team()];
    const [hostA, hostB] = [(await f.host(a.owner.key, { type: "byoc" })).host, (await f.host(b.owner.key, { type: "byoc" })).host];
    for (const host of [hostA, hostB]) {
      expect((await audit(t.adminKey, { target_id: host.id })).body.items.map((e: any) => e.action)).toEqual(["host.created"]);
    }
    const seenByA = await listAll("/v1/audit", a.owner.key);
    const targets = seenByA.map((e) => e.target_id);
    expect(targets).toContain(hostA.id);
    expect(targets).not.toContain(hostB.id);
    for (const entry of seenByA) expect(entry.team_id).toBe(a.team.id);
    expect((await audit(a.owner.key, { target_id: hostB.id })).body.items).toEqual([]);
  });

  it("is closed to team members (403)", async () => {
    const team = await f.team();
    expectError(await audit(team.member.key), 403, "forbidden");
  });

  it("filters by target_id and action", async () => {
    const team = await f.team();
    const [one, two] = [(await f.host(team.owner.key, { type: "byoc" })).host, (await f.host(team.owner.key, { type: "byoc" })).host];
    expect((await t.http.post(`/v1/hosts/${one.id}/tags`, { key: team.owner.key, body: { tag: "x" } })).status).toBe(204);

    const byTarget = (await audit(team.owner.key, { target_id: one.id })).body.items;
    expect(byTarget.map((e: any) => e.action).sort()).toEqual(["host.created", "host.tag_added"]);
    for (const entry of byTarget) expect(entry).toMatchObject({ target_id: one.id, target_type: "host" });

    const created = await listAll("/v1/audit?action=host.created", team.owner.key);
    expect(created.map((e) => e.target_id)).toEqual(expect.arrayContaining([one.id, two.id]));
    for (const entry of created) expect(entry.action).toBe("host.created");

    const both = (await audit(team.owner.key, { target_id: one.id, action: "host.tag_added" })).body.items;
    expect(both).toHaveLength(1);
    expect(both[0].metadata).toEqual({ tag: "x" });
  });

  it("lists newest first", async () => {
    const team = await f.team();
    const { host } = await f.host(team.owner.key, { type: "byoc" });
    clock.advance(1_000);
    await t.http.post(`/v1/hosts/${host.id}/tags`, { key: team.owner.key, body: { tag: "later" } });
    clock.advance(1_000);
    await t.http.post(`/v1/hosts/${host.id}/token`, { key: team.owner.key });

    const items = (await audit(team.owner.key, { target_id: host.id })).body.items;
    expect(items.map((e: any) => e.action)).toEqual(["host.token_regenerated", "host.tag_added", "host.created"]);
    const times = items.map((e: any) => Date.parse(e.created_at));
    expect(times).toEqual([...times].sort((x, y) => y - x));
  });

  it("refuses a filter value with a control character as 400, not a 500", async () => {
    for (const query of ["target_id=%00", "target_id=a%00b"]) {
      expectError(await t.http.get(`/v1/audit?${query}`, { key: t.adminKey }), 400, "invalid_request");
    }
  });
});

// ---- every operator route against another team -------------------------------------------------

/** A team and one of each thing it owns. */
interface TeamResources {
  team: TeamFixture;
  host: Host;
  commandId: string;
  webhookId: string;
  /** A key of the team's member, which the owner may revoke. */
  memberKeyId: string;
  /** A user in no team, whom the owner may add. */
  newcomerId: string;
}

async function teamResources(): Promise<TeamResources> {
  const team = await f.team();
  const { host } = await f.host(team.owner.key, { type: "byoc", tags: ["seed"] });
  const command = await t.http.post(`/v1/hosts/${host.id}/commands`, { key: team.owner.key, body: { type: "ping" } });
  expect(command.status, JSON.stringify(command.body)).toBe(201);
  const webhook = await t.http.post("/v1/webhooks", { key: team.owner.key, body: { url: "https://hooks.example.test/in", types: ["host.*"] } });
  expect(webhook.status, JSON.stringify(webhook.body)).toBe(201);
  return {
    team,
    host,
    commandId: command.body.id,
    webhookId: webhook.body.webhook.id,
    memberKeyId: (await ownKey(team.member.key)).id,
    newcomerId: (await f.user()).id,
  };
}

/** What a team's own owner could tell apart: every ID, name and email of its resources. */
const secretsOf = (r: TeamResources) => [
  r.team.team.id, r.team.team.name, r.host.id, r.commandId, r.webhookId, r.memberKeyId,
  ...[r.team.owner, r.team.member].flatMap(({ user }) => [user.id, user.email]),
];

/**
 * Every operator route of the contract, aimed at one team's resources: `own` is
 * what that team's owner gets (so the request is a real one), `owner` and
 * `member` what another team's owner and member get (SPEC §3: another team's
 * resources are 404; what only admins may do is 403).
 */
const CROSS_TEAM: Record<string, { own: number; owner: number; member: number; call: (r: TeamResources, key: string) => Promise<CallResult> }> = {
  getMe: { own: 200, owner: 200, member: 200, call: (_, key) => t.http.get("/v1/me", { key }) },
  createUser: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.post("/v1/users", { key, body: { email: `x-${unique()}@example.test` } }) },
  listUsers: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.get("/v1/users", { key }) },
  rotateSigningKey: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.post("/v1/system/signing-keys/rotate", { key }) },
  getCaStatus: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.get("/v1/system/ca", { key }) },
  rotateCa: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.post("/v1/system/ca/rotate", { key, body: { action: "start" } }) },
  createTeam: { own: 403, owner: 403, member: 403, call: (_, key) => t.http.post("/v1/teams", { key, body: { name: `t-${unique()}` } }) },
  listTeams: { own: 200, owner: 200, member: 200, call: (_, key) => t.http.get("/v1/teams?limit=500", { key }) },
  addMember: {
    own: 201, owner: 404, member: 404,
    call: (r, key) => t.http.post(`/v1/teams/${r.team.team.id}/members`, { key, body: { user_id: r.newcomerId, role: "member" } }),
  },
  listMembers: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/teams/${r.team.team.id}/members`, { key }) },
  removeMember: {
    own: 204, owner: 404, member: 404,
    call: (r, key) => t.http.delete(`/v1/teams/${r.team.team.id}/members/${r.team.member.user.id}`, { key }),
  },
  createApiKey: {
    own: 201, owner: 403, member: 403,
    call: (r, key) => t.http.post("/v1/api-keys", { key, body: { name: `k-${unique()}`, user_id: r.team.owner.user.id, team_id: r.team.team.id } }),
  },
  listApiKeys: { own: 200, owner: 200, member: 200, call: (_, key) => t.http.get("/v1/api-keys?limit=500", { key }) },
  revokeApiKey: { own: 204, owner: 404, member: 404, call: (r, key) => t.http.delete(`/v1/api-keys/${r.memberKeyId}`, { key }) },
  createHost: {
    own: 201, owner: 404, member: 404,
    call: (r, key) => t.http.post("/v1/hosts", { key, body: { type: "byoc", team_id: r.team.team.id } }),
  },
  listHosts: { own: 200, owner: 200, member: 200, call: (r, key) => t.http.get(`/v1/hosts?team_id=${r.team.team.id}`, { key }) },
  getHost: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/hosts/${r.host.id}`, { key }) },
  deleteHost: { own: 204, owner: 404, member: 404, call: (r, key) => t.http.delete(`/v1/hosts/${r.host.id}`, { key }) },
  regenerateHostToken: { own: 201, owner: 404, member: 404, call: (r, key) => t.http.post(`/v1/hosts/${r.host.id}/token`, { key }) },
  addHostTag: { own: 204, owner: 404, member: 404, call: (r, key) => t.http.post(`/v1/hosts/${r.host.id}/tags`, { key, body: { tag: "added" } }) },
  removeHostTag: { own: 204, owner: 404, member: 404, call: (r, key) => t.http.delete(`/v1/hosts/${r.host.id}/tags/seed`, { key }) },
  probeHost: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.post(`/v1/hosts/${r.host.id}/probe`, { key }) },
  listHostTags: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/hosts/${r.host.id}/tags`, { key }) },
  sendCommand: {
    own: 201, owner: 404, member: 404,
    call: (r, key) => t.http.post(`/v1/hosts/${r.host.id}/commands`, { key, body: { type: "ping" } }),
  },
  getCommand: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/hosts/${r.host.id}/commands/${r.commandId}`, { key }) },
  listCommands: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/hosts/${r.host.id}/commands`, { key }) },
  // Audit is closed to members (403) and filtered to the caller's team for owners: another team's target lists nothing.
  listAudit: { own: 200, owner: 200, member: 403, call: (r, key) => t.http.get(`/v1/audit?target_id=${r.host.id}`, { key }) },
  // Any key may stream; another team's host in the filter narrows the caller's own scope to nothing (the first frame names only a position).
  streamEvents: { own: 200, owner: 200, member: 200, call: (r, key) => t.http.get(`/v1/events?host_id=${r.host.id}&after=0`, { key }) },
  createWebhook: {
    own: 201, owner: 404, member: 404,
    call: (r, key) => t.http.post("/v1/webhooks", { key, body: { url: "https://hooks.example.test/x", types: ["host.*"], team_id: r.team.team.id } }),
  },
  listWebhooks: { own: 200, owner: 200, member: 403, call: (_, key) => t.http.get("/v1/webhooks?limit=500", { key }) },
  deleteWebhook: { own: 204, owner: 404, member: 404, call: (r, key) => t.http.delete(`/v1/webhooks/${r.webhookId}`, { key }) },
  listWebhookDeliveries: { own: 200, owner: 404, member: 404, call: (r, key) => t.http.get(`/v1/webhooks/${r.webhookId}/deliveries`, { key }) },
};

const OPERATOR_ROUTES = (Object.values(routes) as RouteDef[]).filter((route) => route.auth === "api_key");

describe("every operator route against another team's resources", () => {
  it("has a case for every operator route of the contract", () => {
    expect(Object.keys(CROSS_TEAM).sort()).toEqual(OPERATOR_ROUTES.map((route) => route.operationId).sort());
  });

  it.each(OPERATOR_ROUTES.map((route) => route.operationId))("%s: a real request for the team's own owner", async (name) => {
    const { own, call } = CROSS_TEAM[name]!;
    const r = await teamResources();
    const res = await call(r, r.team.owner.key);
    expect(res.status, JSON.stringify(res.body)).toBe(own);
  });

  describe.each(["owner", "member"] as const)("with another team's %s key", (role) => {
    let mine: TeamResources;
    let theirs: TeamFixture;
    beforeAll(async () => {
      [mine, theirs] = [await teamResources(), await f.team()];
    });

    it.each(OPERATOR_ROUTES.map((route) => route.operationId))("%s: refused as SPEC §3 says, nothing of the team in the answer", async (name) => {
      const { [role]: status, call } = CROSS_TEAM[name]!;
      const res = await call(mine, theirs[role].key);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      if (status >= 400) expect(res.body).toEqual({ error: { code: status === 403 ? "forbidden" : "not_found", message: expect.any(String) } });
      const text = JSON.stringify(res.body ?? "");
      for (const secret of secretsOf(mine)) expect(text, name).not.toContain(secret);
      if (name === "listHosts" || name === "listAudit" || name === "listWebhooks") expect(res.status === 200 ? res.body.items : []).toEqual([]);
    });

    it("left the team's resources as they were", async () => {
      const host = await t.http.get(`/v1/hosts/${mine.host.id}`, { key: mine.team.owner.key });
      expect(host.status).toBe(200);
      expect(host.body.tags).toEqual(["seed"]);
      expect((await t.http.get(`/v1/hosts/${mine.host.id}/commands/${mine.commandId}`, { key: mine.team.owner.key })).status).toBe(200);
      expect(await meStatus(mine.team.member.key)).toBe(200);
      const members = await listAll("/v1/api-keys", mine.team.member.key);
      expect(ids(members)).toContain(mine.memberKeyId);
      expect(await f.auditOf(mine.host.id, "host.token_regenerated")).toEqual([]);
    });
  });

  // So no third kind of key, of a user in no team, exists to try above (a removed member's keys die: see "team members").
  it("makes no key for a non-admin user who is in no team", async () => {
    const loner = await f.user();
    const res = await t.http.post("/v1/api-keys", { key: t.adminKey, body: { name: `k-${unique()}`, user_id: loner.id } });
    expectError(res, 400, "invalid_request");
    expect(res.body.error.message).toContain("team_id");
  });
});
