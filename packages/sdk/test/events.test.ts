import { readFileSync } from "node:fs";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { MusterApiError, MusterClient, MusterEventsGoneError, type MusterEvent } from "../src/index.js";
import { bringOnline, makeTeam } from "./client-fixtures.js";

/**
 * client.events.watch() against a real control plane: typed events, the
 * reconnect after a dropped connection and after a control-plane restart
 * (no gap, no duplicate), and the errors that end the loop.
 */
let cp: ControlPlane;
let admin: MusterClient;

beforeAll(async () => {
  cp = await startControlPlane();
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
});
afterAll(() => cp?.stop());

/** A fetch whose open event streams can be cut, as a network drop would. */
function cuttableFetch() {
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  let connections = 0;
  const wrapped: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.headers.get("content-type")?.startsWith("text/event-stream")) return response;
    connections++;
    const reader = response.body!.getReader();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
      pull: async (c) => {
        const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (done) return c.close();
        c.enqueue(value);
      },
      cancel: () => void reader.cancel().catch(() => {}),
    });
    open.add(controller);
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return {
    fetch: wrapped,
    connections: () => connections,
    cut() {
      for (const controller of open) controller.error(new TypeError("network connection lost"));
      open.clear();
    },
  };
}

/** Runs a watch in the background, collecting what it yields, until stopped. */
function collect(client: MusterClient, options: Parameters<MusterClient["events"]["watch"]>[0] = {}) {
  const controller = new AbortController();
  const seen: MusterEvent[] = [];
  const positions: string[] = [];
  let reconnects = 0;
  const done = (async () => {
    for await (const event of client.events.watch({
      ...options,
      signal: controller.signal,
      onConnect: ({ position }) => positions.push(position),
      onReconnect: () => void reconnects++,
    })) {
      seen.push(event);
    }
  })();
  const until = async (check: () => boolean, what: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw ${seen.map((e) => e.type).join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    seen,
    positions,
    reconnects: () => reconnects,
    done,
    connected: (count = 1) => until(() => positions.length >= count, `${count} connections`),
    events: (count: number) => until(() => seen.length >= count, `${count} events`),
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

describe("events.watch", () => {
  it("yields typed events as they happen, from now, filtered by type", async () => {
    await admin.hosts.create({ type: "regular" });
    const watch = collect(admin, { types: ["host.created", "host.online"] });
    await watch.connected();
    const { host, registration_token } = await admin.hosts.create({ type: "regular", tags: ["gpu"] });
    await bringOnline(cp.url, registration_token);
    await watch.events(2);
    await watch.stop();
    expect(watch.seen.map((event) => `${event.type} ${event.host_id}`)).toEqual([`host.created ${host.id}`, `host.online ${host.id}`]);
    const [created] = watch.seen;
    if (created?.type !== "host.created") throw new Error("expected host.created first");
    expect(created.data.tags).toEqual(["gpu"]);
  });

  it("sees only the key's team", async () => {
    const mine = await makeTeam(cp.url, admin);
    const theirs = await makeTeam(cp.url, admin);
    const watch = collect(mine.member.client, { types: ["host.*"] });
    await watch.connected();
    await theirs.owner.client.hosts.create({ type: "byoc" });
    const { host } = await mine.owner.client.hosts.create({ type: "byoc" });
    await watch.events(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await watch.stop();
    expect(watch.seen.map((event) => event.host_id)).toEqual([host.id]);
  });

  it("resumes after a dropped connection from the last event it yielded: no gap, no duplicate", async () => {
    const network = cuttableFetch();
    const client = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey, fetch: network.fetch });
    const watch = collect(client, { types: ["host.created"] });
    await watch.connected();
    // Cut before the first event too: the position the stream named at the start is where it resumes.
    network.cut();
    await watch.connected(2);
    const created: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) created.push((await admin.hosts.create({ type: "regular" })).host.id);
      await watch.events(created.length - 2);
      network.cut();
    }
    await watch.events(created.length);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await watch.stop();
    expect(watch.seen.map((event) => event.host_id)).toEqual(created);
    expect(network.connections()).toBeGreaterThanOrEqual(5);
    expect(watch.reconnects()).toBeGreaterThanOrEqual(4);
  });

  it("resumes across a control-plane restart: events made while it was down and after arrive once each, in order", async () => {
    const watch = collect(admin, { types: ["host.created", "host.deleted"] });
    await watch.connected();
    const before = (await admin.hosts.create({ type: "regular" })).host.id;
    await watch.events(1);
    await cp.restart();
    const after = [(await admin.hosts.create({ type: "regular" })).host.id, (await admin.hosts.create({ type: "regular" })).host.id];
    await admin.hosts.delete(before);
    await watch.events(4);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await watch.stop();
    expect(watch.seen.map((event) => `${event.type} ${event.host_id}`)).toEqual([
      `host.created ${before}`,
      `host.created ${after[0]}`,
      `host.created ${after[1]}`,
      `host.deleted ${before}`,
    ]);
    expect(watch.reconnects()).toBeGreaterThanOrEqual(1);
  });

  it("starts after a saved event ID, and ends with MusterEventsGoneError for an ID the log does not hold", async () => {
    const first = collect(admin, { types: ["host.created"] });
    await first.connected();
    const a = (await admin.hosts.create({ type: "regular" })).host.id;
    await first.events(1);
    await first.stop();
    const saved = first.seen[0]!.id;
    const b = (await admin.hosts.create({ type: "regular" })).host.id;

    const resumed = collect(admin, { types: ["host.created"], after: saved });
    await resumed.events(1);
    await resumed.stop();
    expect([a, ...resumed.seen.map((event) => event.host_id)]).toEqual([a, b]);

    const error = await (async () => {
      for await (const event of admin.events.watch({ after: String(BigInt(saved) + 10n ** 15n) })) void event;
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MusterEventsGoneError);
    expect((error as MusterEventsGoneError).oldestId).toMatch(/^\d+$/);
  });

  it("ends with the API's refusal when the key is revoked, and quietly when the signal aborts", async () => {
    const { key, api_key } = await admin.apiKeys.create({ name: "watcher" });
    const client = new MusterClient({ baseUrl: cp.url, apiKey: key });
    const watch = collect(client);
    await watch.connected();
    await admin.apiKeys.revoke(api_key.id);
    const error = await watch.done.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(MusterApiError);
    expect((error as MusterApiError).status).toBe(401);

    const quiet = collect(admin);
    await quiet.connected();
    await quiet.stop();
    expect(quiet.seen).toEqual([]);
  }, 60_000);
});

describe("the scheduler's loop of README and docs/events.md", () => {
  const REPO = new URL("../../../", import.meta.url);
  /** The ```ts block of a page that holds the watch loop. */
  const loopOf = (page: string) => /```ts\n([^`]*muster\.events\.watch[^`]*)```/.exec(readFileSync(new URL(page, REPO), "utf8"))?.[1] ?? "";

  it("is ten lines at most, the same on both pages, and runs as written: capacity added when a host comes online, drained when it goes, its position saved", async () => {
    const page = loopOf("docs/events.md");
    const readme = loopOf("README.md");
    expect(page.trimEnd().split("\n").length).toBeLessThanOrEqual(10);
    // README's copy starts at the loop (its client was made earlier on that page).
    expect(readme.trim().length).toBeGreaterThan(0);
    expect(page).toContain(readme.trim());

    const js = ts.transpileModule(page, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const body = js.replace(/^import .*$/m, "");
    expect(body).not.toContain("import ");
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<void>;
    const run = new AsyncFunction("MusterClient", "process", "store", "scheduler", body);

    const stop = new Error("the test's end");
    // The first run's store holds the log's head, so the loop starts before the host is made.
    const position = await new Promise<string>((resolve, reject) => {
      const controller = new AbortController();
      const watching = admin.events.watch({ signal: controller.signal, onConnect: (info) => (resolve(info.position), controller.abort()) });
      watching.next().catch(reject);
    });
    let saved: string | undefined = position;
    const store = { lastEventId: async () => saved, saveLastEventId: async (id: string) => void (saved = id) };
    const added: string[] = [];
    let drained: string | null = null;
    const scheduler = {
      addCapacity: (host: { id: string; status: string }) => added.push(`${host.id} ${host.status}`),
      drain: (hostId: string) => {
        drained = hostId;
        throw stop;
      },
    };

    const { host, registration_token } = await admin.hosts.create({ type: "regular" });
    await bringOnline(cp.url, registration_token);
    await admin.hosts.delete(host.id);
    const env = { env: { MUSTER_URL: cp.url, MUSTER_API_KEY: cp.adminKey } };
    await expect(run(MusterClient, env, store, scheduler)).rejects.toBe(stop);
    expect(added).toEqual([`${host.id} online`]);
    expect(drained).toBe(host.id);
    // Saved after the online event; the deleted one ended the loop before its save, so a rerun starts there.
    expect(BigInt(saved!)).toBeGreaterThan(BigInt(position));
  });
});
