import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  FileCredentialStore,
  HostAgent,
  MemoryCommandOutcomeStore,
  MemoryCredentialStore,
  RESTARTED_MID_COMMAND,
  type AgentLogger,
  type CommandOutcomeStore,
  type CredentialStore,
} from "@muster/sdk";
import { TcpBalancer } from "@muster/testkit";
import type { TestApp } from "./support/app.js";
import { eventually, startTwoPlanes, type TwoPlanes } from "./support/channel.js";

/**
 * Each way the outcome of a command used to be lost, reproduced with a real
 * agent (the SDK's HostAgent) reaching two control planes on shared stores
 * through a TCP load balancer that sends everything to the first until it is
 * down, as haproxy does with a backup server. Every path must end with
 * exactly one outcome and exactly one run on the agent.
 */
let planes: TwoPlanes | undefined;
let a: TestApp;
let ports: number[];
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  planes = await startTwoPlanes();
  a = planes.a;
  ports = [planes.urlA, planes.urlB].map((url) => Number(new URL(url).port));
});
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(() => planes?.close());

const SPECS = { arch: "x86_64", cpu_cores: 2, memory_mb: 2048, disk_gb: 20, hostname: "outcomes", os: "Linux" };

function deferred() {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}

/** A logger that keeps every message, to see what the agent did with a repeat. */
function recordingLogger(): AgentLogger & { messages: { message: string; fields: object }[] } {
  const messages: { message: string; fields: object }[] = [];
  const keep = (fields: object, message: string) => void messages.push({ message, fields });
  return { messages, debug: keep, info: keep, warn: keep, error: keep };
}

interface Rig {
  balancer: TcpBalancer;
  hostId: string;
  /** How many times the agents of this rig ran `deploy`. */
  runs(): number;
  /** Starts an agent on the host's saved credentials; `deploy` waits for `gate` (never released: the agent "dies" mid-command). */
  agent(gate: Promise<void>): Promise<{ agent: HostAgent; log: ReturnType<typeof recordingLogger> }>;
  command(timeoutS?: number): Promise<string>;
  status(id: string, status: string): Promise<Record<string, unknown>>;
}

async function rig(stores: { credentials: CredentialStore; outcomes?: CommandOutcomeStore }): Promise<Rig> {
  const balancer = await TcpBalancer.start(ports, "first");
  cleanup.push(() => balancer.close());
  const created = await a.http.post("/v1/hosts", { key: a.adminKey, body: { type: "regular" } });
  expect(created.status).toBe(201);
  const hostId: string = created.body.host.id;
  let runs = 0;
  let registered = false;

  return {
    balancer,
    hostId,
    runs: () => runs,
    async agent(gate) {
      const log = recordingLogger();
      const agent = new HostAgent({
        controlPlane: balancer.url,
        credentials: stores.credentials,
        ...(stores.outcomes ? { commandOutcomes: stores.outcomes } : {}),
        specs: () => SPECS,
        certificate: false,
        agentVersion: "outcomes-test",
        logger: log,
        // The shortest redial (1–2 s backoff at its low end), so a test waits no longer than it must.
        random: () => 0,
      });
      cleanup.push(() => void agent.stop());
      agent.onCommand("deploy", async () => {
        runs++;
        await gate;
        return { deployed: true };
      });
      if (!registered) {
        await agent.register({ token: created.body.registration_token, address: "127.0.0.1:7070" });
        registered = true;
      }
      const opened = new Promise((resolve) => agent.once("channelOpen", resolve));
      await agent.start();
      await opened;
      return { agent, log };
    },
    async command(timeoutS = 60) {
      const res = await a.http.post(`/v1/hosts/${hostId}/commands`, { key: a.adminKey, body: { type: "deploy", timeout_s: timeoutS } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.id;
    },
    status: (id, status) =>
      eventually(async () => {
        const res = await a.http.get(`/v1/hosts/${hostId}/commands/${id}`, { key: a.adminKey });
        return res.body.status === status ? res.body : undefined;
      }, 15_000),
  };
}

/** The result travelled on a channel: the HTTP fallback (after 5 s without an acknowledgement) was never needed. */
const overHttp = (log: ReturnType<typeof recordingLogger>) => log.messages.filter((m) => m.message === "command result sent over HTTP").length;

const memoryStores = () => ({ credentials: new MemoryCredentialStore(), outcomes: new MemoryCommandOutcomeStore() });
const stateOf = (outcomes: MemoryCommandOutcomeStore, id: string) => outcomes.document?.commands.find((entry) => entry.id === id)?.state;

describe("the outcome of a command survives", () => {
  it("a control plane stopped between the ack and the result: the result goes to the other one", async () => {
    const stores = memoryStores();
    const r = await rig(stores);
    const gate = deferred();
    const { log } = await r.agent(gate.promise);
    const id = await r.command();
    await r.status(id, "delivered");

    r.balancer.freeze(0, "both");
    gate.release();
    await eventually(async () => (stateOf(stores.outcomes, id) === "finished" ? true : undefined));
    r.balancer.down(0);

    expect(await r.status(id, "succeeded")).toMatchObject({ result: { deployed: true } });
    expect(r.runs()).toBe(1);
    expect(overHttp(log)).toBe(0);
    await eventually(async () => (stateOf(stores.outcomes, id) === "reported" ? true : undefined));
  });

  it("a lost ack: the command, still queued when its control plane dies, ends succeeded through the other one, run once", async () => {
    const stores = memoryStores();
    const r = await rig(stores);
    const { log } = await r.agent(Promise.resolve());
    r.balancer.freeze(0, "upstream");
    const id = await r.command();
    await eventually(async () => (stateOf(stores.outcomes, id) === "finished" ? true : undefined));
    expect((await a.http.get(`/v1/hosts/${r.hostId}/commands/${id}`, { key: a.adminKey })).body.status).toBe("queued");
    r.balancer.down(0);

    // The other plane sends the queued command again while the agent sends its result again: whichever comes first,
    // the agent runs nothing (a repeat gets the stored result: agent-commands.test.ts) and one result is stored.
    expect(await r.status(id, "succeeded")).toMatchObject({ result: { deployed: true } });
    expect(r.runs()).toBe(1);
    expect(overHttp(log)).toBe(0);
  });

  it("a result that reaches a process other than the one that delivered the command", async () => {
    const stores = memoryStores();
    const r = await rig(stores);
    const gate = deferred();
    const { log } = await r.agent(gate.promise);
    const id = await r.command();
    await r.status(id, "delivered");
    r.balancer.down(0);
    // The other process sends the delivered command again while it still runs: the agent only acknowledges it.
    await eventually(async () => (log.messages.some((m) => m.message.includes("received again")) ? true : undefined), 10_000);
    gate.release();

    expect(await r.status(id, "succeeded")).toMatchObject({ result: { deployed: true } });
    expect(r.runs()).toBe(1);
    expect(overHttp(log)).toBe(0);
    expect(log.messages.find((m) => m.message.includes("received again"))!.fields).toMatchObject({ command_id: id, state: "running" });
  });

  it("a channel that hangs and does not come back: the result goes over HTTP", async () => {
    const stores = memoryStores();
    const r = await rig(stores);
    const gate = deferred();
    const { log } = await r.agent(gate.promise);
    const id = await r.command();
    await r.status(id, "delivered");
    r.balancer.freeze(0, "upstream");
    gate.release();

    expect(await r.status(id, "succeeded")).toMatchObject({ result: { deployed: true } });
    expect(r.runs()).toBe(1);
    await eventually(async () => (overHttp(log) === 1 ? true : undefined));
  });
});

describe("an agent restarted", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "muster-outcomes-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("in the middle of a command reports it failed with a clear error and never runs it again", async () => {
    const credentials = new FileCredentialStore(join(dir, "mid.json"));
    const r = await rig({ credentials });
    const first = await r.agent(new Promise<void>(() => {}));
    const id = await r.command();
    await r.status(id, "delivered");
    const file = join(dir, "mid.commands.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8")).commands).toEqual([{ id, expires_at: expect.any(String), state: "running" }]);
    await first.agent.stop();

    const second = await r.agent(Promise.resolve());
    expect(await r.status(id, "failed")).toMatchObject({ error: RESTARTED_MID_COMMAND });
    expect(r.runs()).toBe(1);
    expect(overHttp(second.log)).toBe(0);
  });

  it("after a command ended but before its result got through sends the stored result, and runs nothing again", async () => {
    const credentials = new FileCredentialStore(join(dir, "after.json"));
    const r = await rig({ credentials });
    const gate = deferred();
    const first = await r.agent(gate.promise);
    const id = await r.command();
    await r.status(id, "delivered");
    r.balancer.freeze(0, "upstream");
    gate.release();
    const stateOnDisk = () => JSON.parse(readFileSync(join(dir, "after.commands.json"), "utf8")).commands[0]?.state;
    await eventually(async () => (stateOnDisk() === "finished" ? true : undefined));
    await first.agent.stop();

    const second = await r.agent(Promise.resolve());
    expect(await r.status(id, "succeeded")).toMatchObject({ result: { deployed: true } });
    expect(r.runs()).toBe(1);
    expect(overHttp(second.log)).toBe(0);
    await eventually(async () => (stateOnDisk() === "reported" ? true : undefined));
  });
});
