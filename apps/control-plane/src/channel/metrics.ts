import { Counter, Gauge, type Registry } from "prom-client";

export type RejectionReason = "protocol_too_old" | "hello_timeout" | "bad_hello" | "refused_upgrade";

export interface ChannelMetrics {
  channels: Gauge;
  rejections: Counter<"reason">;
}

/** The channel's figures, in the app's registry; commands by state are counted at scrape time. */
export function createChannelMetrics(
  registry: Registry,
  countCommands: () => Promise<{ status: string; count: number }[]>,
): ChannelMetrics {
  new Gauge({
    name: "muster_host_commands",
    help: "Host commands by state (all processes: read from the database)",
    labelNames: ["status"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { status, count } of await countCommands()) this.set({ status }, count);
    },
  });
  return {
    channels: new Gauge({ name: "muster_agent_channels", help: "Agent channels open on this process", registers: [registry] }),
    rejections: new Counter({
      name: "muster_agent_channel_rejections_total",
      help: "Agent channels refused before or at the handshake, by reason",
      labelNames: ["reason"],
      registers: [registry],
    }),
  };
}
