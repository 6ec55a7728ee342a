import { Agent, request } from "undici";
import WebSocket from "ws";
import { PROTOCOL_VERSION } from "@muster/contract";

/**
 * One process of the fleet simulator (bench/fleet.ts forks several: a process
 * holds a limited number of sockets). Its hosts beat as muster-agent does: at
 * the interval with the agent's jitter, over their channel while it is open
 * (with a WebSocket ping, as the agent sends), over HTTP otherwise, and redial
 * a dropped channel after 1–2 s. It reports what it counted every second.
 */
export interface WorkerHost {
  id: string;
  token: string;
  /** The control plane's URL, at the loopback address this worker connects to. */
  url: string;
}

export type ToWorker =
  | { type: "start"; hosts: WorkerHost[]; intervalS: number }
  | { type: "dial"; parallel: number }
  | { type: "silence"; indices: number[] }
  | { type: "stop" };

export interface WorkerCounts {
  httpBeats: number;
  channelBeats: number;
  /** HTTP answers other than 204, and failed requests, by status or error code. */
  errors: Record<string, number>;
  /** Channels that closed without being asked to, by close code. */
  drops: Record<string, number>;
  open: number;
  dialed: number;
  /** Latencies (ms) of the HTTP beats since the last report. */
  httpLatencies: number[];
}

export type FromWorker =
  | ({ type: "stats" } & WorkerCounts)
  | { type: "silenced"; hosts: { id: string; lastBeatAt: number }[] }
  | { type: "stopped" };

const TICK_MS = 50;

interface SimHost extends WorkerHost {
  ws: WebSocket | null;
  open: boolean;
  silenced: boolean;
  lastBeatAt: number;
}

const send = (message: FromWorker) => process.send!(message);

let hosts: SimHost[] = [];
let intervalS = 10;
let stopping = false;
const dispatcher = new Agent({ connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
const counts: WorkerCounts = { httpBeats: 0, channelBeats: 0, errors: {}, drops: {}, open: 0, dialed: 0, httpLatencies: [] };
const bump = (bucket: Record<string, number>, key: string) => (bucket[key] = (bucket[key] ?? 0) + 1);

/** Hosts due per tick: a wheel of buckets rather than a scan of the whole fleet every tick. */
const due = new Map<number, number[]>();
const slot = (at: number) => Math.floor(at / TICK_MS);
function schedule(index: number, at: number): void {
  const bucket = due.get(slot(at));
  if (bucket) bucket.push(index);
  else due.set(slot(at), [index]);
}

function beat(index: number): void {
  const host = hosts[index]!;
  if (host.silenced || stopping) return;
  schedule(index, Date.now() + intervalS * 1000 * (0.8 + Math.random() * 0.2));
  if (host.open && host.ws) {
    host.ws.ping();
    host.ws.send(JSON.stringify({ type: "heartbeat", sent_at: new Date().toISOString() }));
    host.lastBeatAt = Date.now();
    counts.channelBeats++;
    return;
  }
  void httpBeat(host);
}

async function httpBeat(host: SimHost): Promise<void> {
  const sent = performance.now();
  try {
    const response = await request(`${host.url}/v1/hosts/${host.id}/heartbeat`, { method: "POST", headers: { "x-host-token": host.token }, dispatcher });
    await response.body.dump();
    counts.httpLatencies.push(performance.now() - sent);
    if (response.statusCode === 204) {
      counts.httpBeats++;
      host.lastBeatAt = Date.now();
    } else bump(counts.errors, String(response.statusCode));
  } catch (error) {
    bump(counts.errors, (error as { code?: string }).code ?? "network");
  }
}

/** Opens a host's channel; resolves when it is open or has failed. */
function dial(host: SimHost): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${host.url.replace(/^http/, "ws")}/v1/hosts/${host.id}/channel`, {
      headers: { "x-host-token": host.token },
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    host.ws = ws;
    ws.on("open", () => ws.send(JSON.stringify({ type: "hello", protocol_version: PROTOCOL_VERSION, agent_version: "fleet-sim" })));
    ws.on("message", (data) => {
      if (host.open || !String(data).includes('"type":"welcome"')) return;
      host.open = true;
      counts.open++;
      resolve();
    });
    ws.on("error", () => {});
    ws.on("close", (code) => {
      if (host.open) counts.open--;
      const wasOpen = host.open;
      host.open = false;
      host.ws = null;
      resolve();
      if (stopping || host.silenced) return;
      bump(counts.drops, wasOpen ? String(code) : `dial ${code}`);
      setTimeout(() => void dial(host), 1000 + Math.random() * 1000);
    });
  });
}

async function dialAll(parallel: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < hosts.length && !stopping) {
        const host = hosts[next++]!;
        await dial(host);
        counts.dialed++;
      }
    }),
  );
}

function report(): void {
  send({ type: "stats", ...counts, httpLatencies: counts.httpLatencies.splice(0) });
}

process.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "start": {
      intervalS = message.intervalS;
      hosts = message.hosts.map((host) => ({ ...host, ws: null, open: false, silenced: false, lastBeatAt: 0 }));
      // The first beats spread over one interval, as agents that started at different times.
      const now = Date.now();
      hosts.forEach((_, index) => schedule(index, now + Math.random() * intervalS * 1000));
      let last = slot(now);
      setInterval(() => {
        for (const current = slot(Date.now()); last <= current; last++) {
          for (const index of due.get(last) ?? []) beat(index);
          due.delete(last);
        }
      }, TICK_MS);
      setInterval(report, 1000);
      return;
    }
    case "dial":
      void dialAll(message.parallel);
      return;
    case "silence": {
      const silenced = message.indices.map((index) => hosts[index]!);
      for (const host of silenced) {
        host.silenced = true;
        host.ws?.terminate();
      }
      send({ type: "silenced", hosts: silenced.map((host) => ({ id: host.id, lastBeatAt: host.lastBeatAt })) });
      return;
    }
    case "stop":
      stopping = true;
      for (const host of hosts) host.ws?.terminate();
      report();
      void dispatcher.close().finally(() => {
        send({ type: "stopped" });
        process.exit(0);
      });
      return;
  }
});
