import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { MusterApiError, MusterClient, MusterConnectionError, MusterError } from "../src/index.js";
import { makeTeam, unique } from "./client-fixtures.js";

let cp: ControlPlane;
let admin: MusterClient;
beforeAll(async () => {
  cp = await startControlPlane();
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
});
afterAll(() => cp?.stop());

const rejection = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);

describe("MusterClient: identity, users, teams, members", () => {
  it("tells an admin key from an owner's", async () => {
    expect(await admin.me()).toMatchObject({ role: "admin", user: { is_admin: true } });
    const { team, owner } = await makeTeam(cp.url, admin);
    expect(await owner.client.me()).toMatchObject({ role: "owner", team: { id: team.id }, user: { id: owner.user.id } });
  });

  it("lets an admin create users and teams and see them listed", async () => {
    const { user } = await admin.users.create({ email: `ada-${unique()}@example.com`, name: "Ada" });
    const { team } = await admin.teams.create({ name: `research-${unique()}` });
    expect((await admin.users.list().toArray()).map((u) => u.id)).toContain(user.id);
    expect((await admin.teams.list().toArray()).map((t) => t.id)).toContain(team.id);
  });

  it("adds and removes members; a removed member's key dies with the membership", async () => {
    const { team, owner, member } = await makeTeam(cp.url, admin);
    const { user } = await admin.users.create({ email: `late-${unique()}@example.com` });
    const { member: added } = await owner.client.teams.members.add(team.id, { user_id: user.id, role: "member" });
    expect(added).toMatchObject({ team_id: team.id, user_id: user.id, role: "member" });
    const listed = await member.client.teams.members.list(team.id, { limit: 1 }).toArray();
    expect(listed.map((m) => m.user_id).sort()).toEqual([owner.user.id, member.user.id, user.id].sort());

    const duplicate = await rejection(owner.client.teams.members.add(team.id, { user_id: user.id, role: "owner" }));
    expect(duplicate).toMatchObject({ status: 409, code: "conflict" });

    expect(await owner.client.teams.members.remove(team.id, member.user.id)).toBeUndefined();
    expect(await rejection(member.client.me())).toMatchObject({ status: 401, code: "unauthorized" });
  });

  it("shows a non-admin only their own team", async () => {
    const { team, member } = await makeTeam(cp.url, admin);
    await makeTeam(cp.url, admin);
    expect((await member.client.teams.list().toArray()).map((t) => t.id)).toEqual([team.id]);
  });
});

describe("MusterClient: API keys", () => {
  it("creates a key whose secret is shown once, lists it without the secret, and revokes it at once", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const created = await owner.client.apiKeys.create({ name: "ci" });
    expect(created.key.startsWith(created.api_key.start)).toBe(true);
    const ci = new MusterClient({ baseUrl: cp.url, apiKey: created.key });
    expect((await ci.me()).user.id).toBe(owner.user.id);

    const listed = (await owner.client.apiKeys.list().toArray()).find((k) => k.id === created.api_key.id);
    expect(listed).toMatchObject({ name: "ci", start: created.api_key.start });
    expect(JSON.stringify(listed)).not.toContain(created.key);

    await owner.client.apiKeys.revoke(created.api_key.id);
    expect(await rejection(ci.me())).toMatchObject({ status: 401, code: "unauthorized" });
  });
});

describe("MusterClient: hosts and tags", () => {
  it("creates a BYOC host with tags, reads it back, lists it by tag, re-tokens and deletes it", async () => {
    const { team, owner } = await makeTeam(cp.url, admin);
    const tag = `gpu-${unique()}`;
    const created = await owner.client.hosts.create({ type: "byoc", provider: "hetzner", availability_zone: "fsn1", tags: [tag] });
    expect(created.registration_token).toMatch(/^[0-9a-f]{64}$/);
    expect(created.host).toMatchObject({ type: "byoc", team_id: team.id, status: "pending", tags: [tag], created_by: owner.user.id });

    expect(await owner.client.hosts.get(created.host.id)).toMatchObject({ id: created.host.id, provider: "hetzner" });
    expect((await owner.client.hosts.list({ tag }).toArray()).map((h) => h.id)).toEqual([created.host.id]);
    expect(await owner.client.hosts.list({ tag, status: "online" }).toArray()).toEqual([]);

    const again = await owner.client.hosts.regenerateToken(created.host.id);
    expect(again.registration_token).not.toBe(created.registration_token);

    expect(await owner.client.hosts.delete(created.host.id)).toBeUndefined();
    expect(await rejection(owner.client.hosts.get(created.host.id))).toMatchObject({ status: 404, code: "not_found" });
  });

  it("adds, lists and removes tags", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const { host } = await owner.client.hosts.create({ type: "byoc" });
    await owner.client.hosts.tags.add(host.id, "gpu");
    await owner.client.hosts.tags.add(host.id, "gpu");
    await owner.client.hosts.tags.add(host.id, "zone=eu");
    expect((await owner.client.hosts.tags.list(host.id)).sort()).toEqual(["gpu", "zone=eu"]);
    await owner.client.hosts.tags.remove(host.id, "gpu");
    expect(await owner.client.hosts.tags.list(host.id)).toEqual(["zone=eu"]);
    expect((await owner.client.hosts.get(host.id)).tags).toEqual(["zone=eu"]);
  });

  it("lets a member read the team's hosts but not change them, and hides other teams' hosts", async () => {
    const { owner, member } = await makeTeam(cp.url, admin);
    const stranger = await makeTeam(cp.url, admin);
    const { host } = await owner.client.hosts.create({ type: "byoc" });

    expect((await member.client.hosts.get(host.id)).id).toBe(host.id);
    expect(await rejection(member.client.hosts.create({ type: "byoc" }))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await rejection(member.client.hosts.delete(host.id))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await rejection(stranger.owner.client.hosts.get(host.id))).toMatchObject({ status: 404, code: "not_found" });
    expect(await stranger.owner.client.hosts.list().toArray()).toEqual([]);
  });
});

describe("MusterClient: audit", () => {
  it("shows an owner their host's story, filtered by target and action", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const { host } = await owner.client.hosts.create({ type: "byoc" });
    await owner.client.hosts.tags.add(host.id, "gpu");

    const story = await owner.client.audit.list({ target_id: host.id }).toArray();
    expect(story.map((e) => e.action)).toEqual(["host.tag_added", "host.created"]);
    expect(story[0]).toMatchObject({ actor: owner.user.id, target_type: "host", target_id: host.id });
    const created = await owner.client.audit.listPage({ target_id: host.id, action: "host.created" });
    expect(created.items).toHaveLength(1);
  });
});

describe("MusterClient: errors", () => {
  it("rejects with a MusterApiError carrying status, code, message and request ID", async () => {
    const error = await rejection(admin.hosts.get(`host-${"a".repeat(26)}`));
    expect(error).toBeInstanceOf(MusterApiError);
    expect(error).toBeInstanceOf(MusterError);
    expect(error).not.toBeInstanceOf(MusterConnectionError);
    const apiError = error as MusterApiError;
    expect({ status: apiError.status, code: apiError.code }).toEqual({ status: 404, code: "not_found" });
    expect(apiError.message).toMatch(/not found/);
    expect(apiError.requestId).toMatch(/.+/);
  });

  it("reports the field the API refused", async () => {
    const error = await rejection(admin.hosts.get("not-a-host-id"));
    expect(error).toMatchObject({ status: 400, code: "invalid_request" });
    expect((error as Error).message).toMatch(/id/);
  });

  it("rejects with a MusterConnectionError when nothing answers", async () => {
    const nowhere = new MusterClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, apiKey: "msk_x", maxRetries: 0 });
    const error = await rejection(nowhere.me());
    expect(error).toBeInstanceOf(MusterConnectionError);
    expect(error).toBeInstanceOf(MusterError);
    expect(error).not.toBeInstanceOf(MusterApiError);
    expect((error as MusterConnectionError).timedOut).toBe(false);
  });

  it("refuses to be built without a base URL or a key", () => {
    expect(() => new MusterClient({ baseUrl: "", apiKey: "k" })).toThrow(/baseUrl/);
    expect(() => new MusterClient({ baseUrl: cp.url, apiKey: "" })).toThrow(/apiKey/);
  });

  it("cancels a call through its AbortSignal", async () => {
    const controller = new AbortController();
    controller.abort(new Error("caller gave up"));
    const error = await rejection(admin.me({ signal: controller.signal }));
    expect((error as Error).message).toBe("caller gave up");
  });
});
