import { createCluster } from "redis";

/**
 * How a run's keys and load spread over the masters of the Redis Cluster that
 * REDIS_CLUSTER_NODES names: per master, the run's keys (those under its key
 * prefix), the hosts in the liveness shards it holds, and the commands and
 * CPU time it spent between mark() and report().
 */
interface Counters {
  commands: number;
  cpuS: number;
}

const clusterOf = (nodes: string[]) => createCluster({ rootNodes: nodes.map((url) => ({ url })) });
const field = (info: string, name: string) => Number(new RegExp(`^${name}:(\\S+)`, "m").exec(info)?.[1] ?? NaN);

export class ClusterSpread {
  private marked = new Map<string, Counters>();
  private markedAt = 0;

  private constructor(
    private readonly cluster: ReturnType<typeof clusterOf>,
    private readonly keyPrefix: string,
  ) {}

  static async open(nodes: string[], keyPrefix: string): Promise<ClusterSpread> {
    const cluster = clusterOf(nodes);
    cluster.on("error", () => {});
    await cluster.connect();
    return new ClusterSpread(cluster, keyPrefix);
  }

  /** Starts the load measurement. */
  async mark(): Promise<void> {
    this.marked = await this.counters();
    this.markedAt = Date.now();
  }

  /** One row per master, and a closing line with the spread of each figure (the busiest master over the idlest). */
  async report(): Promise<string[]> {
    const now = await this.counters();
    const seconds = (Date.now() - this.markedAt) / 1000;
    const rows: { address: string; keys: number; hosts: number; commandsPerS: number; cpuS: number }[] = [];
    for (const master of this.cluster.masters) {
      const client = await this.cluster.nodeClient(master);
      let keys = 0;
      let hosts = 0;
      for await (const batch of client.scanIterator({ MATCH: `${this.keyPrefix}*`, COUNT: 1000 })) {
        keys += batch.length;
        for (const key of batch) if (key.startsWith(`${this.keyPrefix}liveness:`)) hosts += await client.zCard(key);
      }
      const before = this.marked.get(master.address);
      const after = now.get(master.address);
      rows.push({
        address: master.address,
        keys,
        hosts,
        commandsPerS: before && after ? (after.commands - before.commands) / seconds : NaN,
        cpuS: before && after ? after.cpuS - before.cpuS : NaN,
      });
    }
    const ratio = (values: number[]) => (Math.max(...values) / Math.min(...values)).toFixed(2);
    return [
      `Redis Cluster, ${rows.length} masters (load while the fleet beat, ${seconds.toFixed(0)} s):`,
      `  ${"master".padEnd(20)} ${"keys".padStart(8)} ${"liveness hosts".padStart(15)} ${"commands/s".padStart(11)} ${"CPU s".padStart(7)}`,
      ...rows.map(
        (row) =>
          `  ${row.address.padEnd(20)} ${String(row.keys).padStart(8)} ${String(row.hosts).padStart(15)} ${row.commandsPerS.toFixed(0).padStart(11)} ${row.cpuS.toFixed(2).padStart(7)}`,
      ),
      `  busiest / idlest master: keys ${ratio(rows.map((r) => r.keys))}, hosts ${ratio(rows.map((r) => r.hosts))}, commands ${ratio(rows.map((r) => r.commandsPerS))}, CPU ${ratio(rows.map((r) => r.cpuS))}`,
    ];
  }

  async close(): Promise<void> {
    await this.cluster.close();
  }

  private async counters(): Promise<Map<string, Counters>> {
    const counters = new Map<string, Counters>();
    for (const master of this.cluster.masters) {
      const client = await this.cluster.nodeClient(master);
      const [stats, cpu] = await Promise.all([client.info("stats"), client.info("cpu")]);
      counters.set(master.address, {
        commands: field(stats, "total_commands_processed"),
        cpuS: field(cpu, "used_cpu_sys") + field(cpu, "used_cpu_user"),
      });
    }
    return counters;
  }
}
