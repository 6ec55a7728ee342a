import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { MusterApiError, MusterClient, MusterWaitTimeoutError, type Host } from "../src/index.js";
import { bringOnline, makeTeam, unique } from "./client-fixtures.js";

let cp: ControlPlane;
let admin: MusterClient;
beforeAll(async () => {
  cp = await startControlPlane();
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
});
afterAll(() => cp?.stop());

/** Counts the requests a client sends, so tests can see pages being fetched. */
function countingClient(apiKey: string) {
  const urls: string[] = [];
  const client = new MusterClient({
    baseUrl: cp.url,
    apiKey,
    fetch: (input, init) => (urls.push(String(input)), fetch(input, init)),
  });
  return { client, urls };
}

async function teamWithHosts(count: number) {
  const team = await makeTeam(cp.url, admin);
  const tag = `batch-${unique()}`;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await team.owner.client.hosts.create({ type: "byoc", tags: [tag] })).host.id);
  return { ...team, tag, ids };
}

describe("cursor pagination", () => {
  it("iterates every item across pages with for await, in creation order", async () => {
    const { owner, tag, ids } = await teamWithHosts(5);
    const { client, urls } = countingClient(owner.key);
    const seen: string[] = [];
    for await (const host of client.hosts.list({ tag, limit: 2 })) seen.push(host.id);
    expect(seen).toEqual(ids);
    expect(urls).toHaveLength(3);
    expect(urls.every((url) => url.includes("limit=2") && url.includes(`tag=${tag}`))).toBe(true);
  });

  it("yields whole pages, and hands out page-at-a-time with the cursor", async () => {
    const { owner, tag, ids } = await teamWithHosts(3);
    const pages: Host[][] = [];
    for await (const page of owner.client.hosts.list({ tag, limit: 2 }).pages()) pages.push(page.items);
    expect(pages.map((items) => items.map((h) => h.id))).toEqual([ids.slice(0, 2), ids.slice(2)]);

    const first = await owner.client.hosts.listPage({ tag, limit: 2 });
    expect(first.items.map((h) => h.id)).toEqual(ids.slice(0, 2));
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await owner.client.hosts.listPage({ tag, limit: 2, cursor: first.next_cursor! });
    expect(second.items.map((h) => h.id)).toEqual(ids.slice(2));
    expect(second.next_cursor).toBeNull();
  });

  it("fetches nothing until iterated, and no page beyond what toArray({ max }) needs", async () => {
    const { owner, tag, ids } = await teamWithHosts(5);
    const { client, urls } = countingClient(owner.key);
    const list = client.hosts.list({ tag, limit: 2 });
    expect(urls).toHaveLength(0);
    expect((await list.toArray({ max: 3 })).map((h) => h.id)).toEqual(ids.slice(0, 3));
    expect(urls).toHaveLength(2);
    expect(await list.toArray({ max: 0 })).toEqual([]);
  });

  it("stops between pages when the signal is aborted", async () => {
    const { owner, tag } = await teamWithHosts(3);
    const controller = new AbortController();
    const seen: string[] = [];
    const walk = (async () => {
      for await (const host of owner.client.hosts.list({ tag, limit: 1 }, { signal: controller.signal })) {
        seen.push(host.id);
        controller.abort(new Error("enough"));
      }
    })();
    await expect(walk).rejects.toThrow("enough");
    expect(seen).toHaveLength(1);
  });

  it("paginates every list of the API: users, teams, keys, audit", async () => {
    const { owner } = await teamWithHosts(3);
    expect((await admin.users.list({ limit: 1 }).toArray({ max: 3 })).length).toBe(3);
    expect((await admin.teams.list({ limit: 1 }).toArray({ max: 2 })).length).toBe(2);
    expect((await admin.apiKeys.list({ limit: 1 }).toArray({ max: 2 })).length).toBe(2);
    const audit = await owner.client.audit.list({ action: "host.created", limit: 1 }).toArray();
    expect(audit.map((e) => e.action)).toEqual(["host.created", "host.created", "host.created"]);
  });
});

describe("hosts.waitUntilOnline", () => {
  it("resolves with the host once its agent has registered and heartbeated", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const created = await owner.client.hosts.create({ type: "byoc" });
    const seen: string[] = [];
    const waiting = owner.client.hosts.waitUntilOnline(created.host.id, {
      pollIntervalMs: 100,
      timeoutMs: 20_000,
      onPoll: (host) => seen.push(host.status),
    });
    await new Promise((resolve) => setTimeout(resolve, 250));
    await bringOnline(cp.url, created.registration_token);
    const host = await waiting;
    expect(host).toMatchObject({ id: created.host.id, status: "online", hostname: "worker-1", address: "127.0.0.1:7070" });
    expect(seen[0]).toBe("pending");
    expect(seen.at(-1)).toBe("online");
  });

  it("gives up with a MusterWaitTimeoutError that says what it last saw", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const { host } = await owner.client.hosts.create({ type: "byoc" });
    const started = Date.now();
    const error = await owner.client.hosts.waitUntilOnline(host.id, { pollIntervalMs: 50, timeoutMs: 400 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterWaitTimeoutError);
    expect((error as MusterWaitTimeoutError).lastSeen?.status).toBe("pending");
    expect((error as Error).message).toMatch(/online/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("stops at once when the caller aborts, or when the host is deleted", async () => {
    const { owner } = await makeTeam(cp.url, admin);
    const { host } = await owner.client.hosts.create({ type: "byoc" });
    const controller = new AbortController();
    const aborted = owner.client.hosts.waitUntilOnline(host.id, { pollIntervalMs: 50, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("operator pressed ^C")), 100);
    await expect(aborted).rejects.toThrow("operator pressed ^C");

    const deleted = owner.client.hosts.waitUntilOnline(host.id, { pollIntervalMs: 50, timeoutMs: 20_000 });
    await owner.client.hosts.delete(host.id);
    const error = await deleted.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterApiError);
    expect(error).toMatchObject({ status: 404, code: "not_found" });
  });
});
