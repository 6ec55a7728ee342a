import { mkdirSync } from "node:fs";
import { join } from "node:path";
import calculateSlot from "cluster-key-slot";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { CREDENTIAL_CHANGES_CHANNEL } from "../../src/services/kv-keys.js";
import { killRedisServer, services as runServices } from "../support/redis-server.js";
import {
  ControlPlane,
  expectNoneMarkedOffline,
  INTERVAL_S,
  Processes,
  scenario,
  sleep,
  startFleet,
  waitFor,
  WINDOW_S,
} from "./harness.js";

const services = inject("faults");
const processes = new Processes();
afterEach(() => processes.killAll());

const AGENTS = 4;
/** Hosts beaten by the scenario itself, so every answer is counted. */
const LOAD_HOSTS = 150;
const SPECS = { address: "127.0.0.1:9", arch: "x86_64", cpu_cores: 2, memory_mb: 1024, disk_gb: 10 };

interface LoadHost {
  id: string;
  token: string;
}

/**
 * `hosts` beating every INTERVAL_S (with the agent's jitter), spread over the
 * planes, until stopped. An answer other than 204, or 503 with Retry-After
 * (the store is away: come back later), is an error.
 */
class HeartbeatLoad {
  beats = 0;
  unavailable = 0;
  /** The slowest answer since the last reset (ms). */
  slowestMs = 0;
  readonly errors: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(planes: ControlPlane[], hosts: LoadHost[]) {
    this.loops = hosts.map((host, i) => this.loop(planes[i % planes.length]!, host));
  }

  private async loop(plane: ControlPlane, host: LoadHost): Promise<void> {
    await sleep(Math.random() * INTERVAL_S * 1000);
    while (this.running) {
      await this.beat(plane, host);
      await sleep(INTERVAL_S * 1000 * (0.8 + Math.random() * 0.2));
    }
  }

  private async beat(plane: ControlPlane, host: LoadHost): Promise<void> {
    const sent = performance.now();
    try {
      const res = await fetch(`${plane.url}/v1/hosts/${host.id}/heartbeat`, {
        method: "POST",
        headers: { "x-host-token": host.token },
        signal: AbortSignal.timeout(10_000),
      });
      const body = await res.text();
      this.slowestMs = Math.max(this.slowestMs, performance.now() - sent);
      this.beats++;
      if (res.status === 503 && Number(res.headers.get("retry-after")) > 0) this.unavailable++;
      else if (res.status !== 204) this.errors.push(`${res.status} ${body.slice(0, 200)}`);
    } catch (error) {
      this.errors.push(`no answer: ${(error as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function enroll(plane: ControlPlane, count: number): Promise<LoadHost[]> {
  const hosts: LoadHost[] = [];
  for (let i = 0; i < count; i++) {
    const { id, token } = await plane.createHost();
    const res = await fetch(`${plane.url}/v1/hosts/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, ...SPECS, hostname: `load-${i}` }),
    });
    const body = (await res.json()) as { token: string };
    if (res.status !== 201) throw new Error(`registration answered ${res.status}: ${JSON.stringify(body)}`);
    hosts.push({ id, token: body.token });
  }
  return hosts;
}

/** The cluster's view of which node serves a slot, asked of a node that is up. */
async function slotMaster(nodePort: number, slot: number): Promise<number | null> {
  const client = createClient({ socket: { port: nodePort, host: "127.0.0.1", reconnectStrategy: false } });
  client.on("error", () => {});
  try {
    await client.connect();
    const shards = await client.clusterSlots();
    return shards.find((shard) => shard.from <= slot && slot <= shard.to)?.master.port ?? null;
  } catch {
    return null;
  } finally {
    client.destroy();
  }
}

const metric = async (plane: ControlPlane, name: string) => {
  const text = await (await fetch(`${plane.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
};

describe("a Redis Cluster under heartbeat load (PostgreSQL + Redis Cluster mode)", () => {
  let dir: string;
  let nodes: string[];
  beforeAll(() => {
    dir = join(services.workDir, "cluster");
    mkdirSync(dir, { recursive: true });
    const printed = runServices(["start-cluster", dir]);
    nodes = /^REDIS_CLUSTER_NODES=(.*)$/m.exec(printed)![1]!.split(",");
  });
  afterAll(() => runServices(["stop", dir]));

  it("loses no host when the master holding the credential announcements is killed and its replica takes over", async () => {
    await scenario(
      services,
      "Redis Cluster master killed",
      `SIGKILL the master of the credential channel's slot (3 masters + 3 replicas) under ${AGENTS} agents and ${LOAD_HOSTS} hosts beating every ${INTERVAL_S} s across 2 control planes (window ${WINDOW_S} s); its replica is promoted`,
      async (observe) => {
        const first = { ...(await ControlPlane.options(services, "postgres", "cluster")), redisUrl: null, redisClusterNodes: nodes.join(",") };
        const planes = [await ControlPlane.start(processes, first), await ControlPlane.start(processes, await ControlPlane.sibling(first, "second-plane"))];
        const agents = await startFleet(processes, planes, AGENTS, first.dataDir);
        const [revoked, ...loadHosts] = await enroll(planes[0]!, LOAD_HOSTS + 1);
        const load = new HeartbeatLoad(planes, loadHosts);
        await waitFor("every plane trusting its credential cache", async () => (await Promise.all(planes.map((plane) => metric(plane, "muster_credential_cache_trusted")))).every((v) => v === 1));
        await sleep(2 * WINDOW_S * 1000);

        const ports = nodes.map((url) => Number(new URL(url).port));
        const slot = calculateSlot(first.kvPrefix + CREDENTIAL_CHANGES_CHANNEL);
        const victim = (await slotMaster(ports[0]!, slot))!;
        const survivor = ports.find((port) => port !== victim)!;
        const beatsBefore = load.beats;
        load.slowestMs = 0;
        await killRedisServer(join(dir, "cluster", `${victim}.pid`));
        const killedAt = Date.now();
        await waitFor(
          "the plane to stop trusting its credential cache",
          async () => (await metric(planes[0]!, "muster_credential_cache_trusted")) === 0,
          10_000,
        );
        observe(`credential cache bypassed ${Date.now() - killedAt} ms after the kill`);
        const promotedMs = await waitFor("a replica promoted for the slot", async () => {
          const master = await slotMaster(survivor, slot);
          return master !== null && master !== victim;
        });
        observe(`replica promoted ${promotedMs} ms after the kill`);
        const trustedMs = await waitFor(
          "every plane trusting its credential cache again",
          async () => (await Promise.all(planes.map((plane) => metric(plane, "muster_credential_cache_trusted")))).every((v) => v === 1),
        );
        observe(`announcements reliable again on both planes ${trustedMs + promotedMs} ms after the kill`);
        await waitFor("/readyz 200 on both planes", async () => (await Promise.all(planes.map((plane) => plane.readyz()))).every((r) => r.status === 200));

        // The subscription moved to the new master: a host deleted now is refused at once by the planes that had it cached.
        const beatAt = (plane: ControlPlane) =>
          fetch(`${plane.url}/v1/hosts/${revoked!.id}/heartbeat`, { method: "POST", headers: { "x-host-token": revoked!.token } }).then((r) => r.status);
        expect(await Promise.all(planes.map(beatAt))).toEqual([204, 204]);
        expect((await planes[0]!.api("DELETE", `/v1/hosts/${revoked!.id}`)).status).toBe(204);
        await waitFor("the deleted host refused on both planes", async () => (await Promise.all(planes.map(beatAt))).every((s) => s === 404), 2_000);
        observe("a host deleted after the failover refused by both planes within 2 s (announcement delivered)");

        // Past a full window after the failover: a sweep that blamed the hosts would have marked them by now.
        await sleep(WINDOW_S * 1000 + 1000);
        await load.stop();
        observe(
          `${load.beats - beatsBefore} beats from the kill on: ${load.unavailable} answered 503 with Retry-After, ${load.errors.length} other errors, slowest answer ${load.slowestMs.toFixed(0)} ms`,
        );
        expect(load.errors).toEqual([]);
        observe(await expectNoneMarkedOffline(planes[0]!, [...agents.map((agent) => agent.hostId), ...loadHosts.map((host) => host.id)]));

        runServices(["start-cluster-node", dir, String(victim)]);
        const rejoinedMs = await waitFor("the killed node back as a replica", async () => {
          const client = createClient({ socket: { port: victim, host: "127.0.0.1", reconnectStrategy: false } });
          client.on("error", () => {});
          try {
            await client.connect();
            return /role:slave[\s\S]*master_link_status:up/.test(await client.info("replication"));
          } finally {
            client.destroy();
          }
        });
        observe(`the killed node restarted and rejoined as a replica in ${rejoinedMs} ms`);
      },
    );
  });
});
