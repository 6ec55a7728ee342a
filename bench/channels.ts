import { readFileSync } from "node:fs";
import { Presets, SingleBar } from "cli-progress";
import WebSocket from "ws";
import { PROTOCOL_VERSION, routes, type ControlPlaneMessage } from "@muster/contract";
import { Transport } from "@muster/sdk";
import { enrollHosts, freshStores, startControlPlane, type EnrolledHost } from "./lib.js";

/**
 * Agent channels against a real control plane: how many idle channels one
 * process holds, what each costs in resident memory, and how long a command
 * takes from POST to the agent (delivery) and back to a stored result
 * (round trip). With DATABASE_URL and REDIS_URL set, commands are sent through
 * a second control plane, so each one crosses the KV pub/sub bus.
 */
const CHANNELS = Number(process.env.CHANNELS_HOSTS ?? 10_000);
const COMMANDS = Number(process.env.CHANNELS_COMMANDS ?? 500);
const HOLD_S = Number(process.env.CHANNELS_HOLD_S ?? 30);
const DIAL_PARALLEL = 200;

function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({ format: ` ${label} |{bar}| {value}/{total} {detail}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, Presets.shades_classic);
  bar.start(total, 0, { detail: "" });
  return bar;
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.replace(/\D+/g, "")) * 1024;
}

/** The JS heap in use, as the control plane's /metrics reports it (the collector's view, not forced). */
async function heapUsedBytes(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(/^muster_process_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
}

async function idle(label: string): Promise<void> {
  const bar = progress(label, HOLD_S);
  for (let s = 1; s <= HOLD_S; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    bar.update(s);
  }
  bar.stop();
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const kibEach = (bytes: number, count: number) => (bytes / Math.max(1, count) / 1024).toFixed(1);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A bench agent: says hello, acknowledges every command and answers it at once. */
function dial(url: string, host: EnrolledHost, onCommand: (id: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/hosts/${host.id}/channel`, {
      headers: { "x-host-token": host.token },
      perMessageDeflate: false,
    });
    ws.on("open", () => ws.send(JSON.stringify({ type: "hello", protocol_version: PROTOCOL_VERSION, agent_version: "bench" })));
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString()) as ControlPlaneMessage;
      if (message.type === "welcome") resolve(ws);
      if (message.type === "command") {
        onCommand(message.id);
        ws.send(JSON.stringify({ type: "ack", id: message.id }));
        ws.send(JSON.stringify({ type: "result", id: message.id, ok: true, result: { pong: true } }));
      }
    });
    ws.on("error", reject);
    ws.on("close", (code) => reject(new Error(`channel closed before the welcome (${code})`)));
  });
}

async function main() {
  const stores = await freshStores();
  // Idle channels send nothing: the offline window is stretched past the hold so none is closed as silent.
  const env = { MUSTER_HEARTBEAT_INTERVAL_S: "3600", MUSTER_OFFLINE_AFTER_S: "7200" };
  const holder = await startControlPlane("holder", env, stores);
  const sender = process.env.DATABASE_URL ? await startControlPlane("sender", env, stores) : holder;
  process.stdout.write(
    `Agent channels: ${CHANNELS.toLocaleString("en")} idle channels on one control plane, ${COMMANDS} commands sent through ${sender === holder ? "the same process" : "another process (KV pub/sub)"}\n`,
  );
  try {
    const enrolling = progress("enrol  hosts   ", CHANNELS);
    const hosts = await enrollHosts(holder.url, stores.adminKey, CHANNELS, 32, (done) => enrolling.update(done));
    enrolling.stop();

    // Enrolment leaves garbage behind; let the process idle as long as the hold before taking the baseline.
    await idle("settle seconds ");
    const baseline = { rss: rssBytes(holder.child.pid!), heap: await heapUsedBytes(holder.url) };
    // Arrival times by command ID: a command may reach its agent before the POST's answer reaches us.
    const arrivals = new Map<string, number>();
    const waiting = new Map<string, () => void>();
    const arrived = (id: string) => (arrivals.set(id, performance.now()), waiting.get(id)?.());
    const sockets: WebSocket[] = [];
    const dialing = progress("open   channels", CHANNELS);
    const dialStarted = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: DIAL_PARALLEL }, async () => {
        while (next < hosts.length) {
          const host = hosts[next++]!;
          sockets.push(await dial(holder.url, host, arrived));
          dialing.update(sockets.length);
        }
      }),
    );
    dialing.stop();
    const dialS = (Date.now() - dialStarted) / 1000;

    await idle("hold   seconds ");
    const held = { rss: rssBytes(holder.child.pid!), heap: await heapUsedBytes(holder.url) };
    const metrics = await (await fetch(`${holder.url}/metrics`)).text();
    const open = Number(/^muster_agent_channels (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const stillOpen = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;

    const operator = new Transport({ baseUrl: sender.url, authHeaders: () => ({ authorization: `Bearer ${stores.adminKey}` }) });
    const deliveries: number[] = [];
    const roundTrips: number[] = [];
    const commanding = progress("send   commands", COMMANDS);
    for (let i = 0; i < COMMANDS; i++) {
      const host = hosts[Math.floor(Math.random() * hosts.length)]!;
      const started = performance.now();
      const command = await operator.call(routes.sendCommand, { params: { id: host.id }, body: { type: "ping", timeout_s: 60 } });
      if (!arrivals.has(command.id)) await new Promise<void>((resolve) => waiting.set(command.id, resolve));
      deliveries.push(arrivals.get(command.id)! - started);
      // The result is stored when the control plane has handled the agent's message: poll tightly for it.
      for (;;) {
        const seen = await operator.call(routes.getCommand, { params: { id: host.id, command_id: command.id } });
        if (seen.status === "succeeded") break;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      roundTrips.push(performance.now() - started);
      arrivals.delete(command.id);
      waiting.delete(command.id);
      commanding.update(i + 1);
    }
    commanding.stop();

    const rows: [string, string][] = [
      ["channels opened", `${sockets.length.toLocaleString("en")} in ${dialS.toFixed(1)} s (${Math.round(sockets.length / dialS)}/s)`],
      ["held after the idle spell", `${stillOpen.toLocaleString("en")} open at the agents, ${open.toLocaleString("en")} per /metrics`],
      ["control plane RSS", `${mib(baseline.rss)} before, ${mib(held.rss)} holding them`],
      ["control plane JS heap in use", `${mib(baseline.heap)} before, ${mib(held.heap)} holding them`],
      ["memory per channel", `${kibEach(held.rss - baseline.rss, sockets.length)} KiB resident, ${kibEach(held.heap - baseline.heap, sockets.length)} KiB of JS heap`],
      ["command delivery p50 / p99", `${percentile(deliveries, 50).toFixed(1)} / ${percentile(deliveries, 99).toFixed(1)} ms`],
      ["command round trip p50 / p99", `${percentile(roundTrips, 50).toFixed(1)} / ${percentile(roundTrips, 99).toFixed(1)} ms (POST to stored result)`],
    ];
    process.stdout.write("\n" + rows.map(([k, v]) => `  ${k.padEnd(30)} ${v}`).join("\n") + "\n");
    for (const ws of sockets) ws.terminate();
  } finally {
    if (sender !== holder) await sender.stop();
    await holder.stop();
    await stores.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
