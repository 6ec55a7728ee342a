import { readFileSync } from "node:fs";
import { Agent, request, type IncomingMessage } from "node:http";
import { freshStores, startControlPlane } from "./lib.js";

/**
 * The event stream under load against a real control plane (built dist):
 * SUBSCRIBERS streams open on one process, spread over TEAMS teams (each
 * stream sees its team's events, as backend services do), and RATE events a
 * second made through the API (tag changes on the teams' hosts). Prints the
 * delivery delay from the change (the event's occurred_at, taken in the
 * writing transaction) to the subscriber, whether every event reached every
 * stream of its team, and the resident memory and heap each open stream costs.
 * Embedded by default; DATABASE_URL + REDIS_URL for PostgreSQL + Redis.
 */
const SUBSCRIBERS = Number(process.env.EVENTS_SUBSCRIBERS ?? 1_000);
const TEAMS = Number(process.env.EVENTS_TEAMS ?? 100);
const HOSTS_PER_TEAM = 5;
const RATE = Number(process.env.EVENTS_RATE ?? 1_000);
const DURATION_S = Number(process.env.EVENTS_DURATION_S ?? 20);
const IN_FLIGHT = 64;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the API's answers, read for a few fields
type Json = any;

const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });

function call(base: string, method: string, path: string, key: string, body?: unknown): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${base}${path}`,
      { method, agent, headers: { authorization: `Bearer ${key}`, ...(text ? { "content-type": "application/json", "content-length": Buffer.byteLength(text) } : {}) } },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (data += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }));
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}

async function ok(promise: Promise<{ status: number; body: Json }>, what: string) {
  const res = await promise;
  if (res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.replace(/\D+/g, "")) * 1024;
}

async function heapUsedBytes(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(/^muster_process_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const print = (text: string) => process.stdout.write(`${text}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stream {
  response: IncomingMessage;
  received: number;
}

/** One subscriber: reads frames, and for each event the delay from its occurred_at to now. */
function subscribe(base: string, key: string, delays: number[]): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/events`, { headers: { authorization: `Bearer ${key}`, accept: "text/event-stream" }, agent: false }, (response) => {
      if (response.statusCode !== 200) return reject(new Error(`stream: HTTP ${response.statusCode}`));
      const stream: Stream = { response, received: 0 };
      let buffer = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        const now = Date.now();
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const at = /"occurred_at":"([^"]+)"/.exec(frame);
          if (!at) continue;
          stream.received++;
          delays.push(now - Date.parse(at[1]!));
        }
      });
      // The position frame arrives at once: the stream is open.
      response.once("data", () => resolve(stream));
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  const stores = await freshStores();
  const cp = await startControlPlane("control plane", {}, stores);
  const pid = cp.child.pid!;
  try {
    print(`setting up ${TEAMS} teams with ${HOSTS_PER_TEAM} hosts each (${process.env.DATABASE_URL ? "PostgreSQL + Redis" : "embedded"})…`);
    const teams: { key: string; hosts: string[] }[] = [];
    for (let i = 0; i < TEAMS; i++) {
      const { team } = await ok(call(cp.url, "POST", "/v1/teams", cp.adminKey, { name: `bench-${i}` }), "team");
      const { user } = await ok(call(cp.url, "POST", "/v1/users", cp.adminKey, { email: `owner-${i}@bench.test` }), "user");
      await ok(call(cp.url, "POST", `/v1/teams/${team.id}/members`, cp.adminKey, { user_id: user.id, role: "owner" }), "member");
      const { key } = await ok(call(cp.url, "POST", "/v1/api-keys", cp.adminKey, { name: "bench", user_id: user.id, team_id: team.id }), "key");
      const hosts: string[] = [];
      for (let h = 0; h < HOSTS_PER_TEAM; h++) hosts.push((await ok(call(cp.url, "POST", "/v1/hosts", key, { type: "byoc" }), "host")).host.id);
      teams.push({ key, hosts });
    }

    await sleep(2_000);
    const rssBefore = rssBytes(pid);
    const heapBefore = await heapUsedBytes(cp.url);
    const delays: number[] = [];
    const streams: Stream[] = [];
    for (let i = 0; i < SUBSCRIBERS; i += 50) {
      streams.push(...(await Promise.all(Array.from({ length: Math.min(50, SUBSCRIBERS - i) }, (_, j) => subscribe(cp.url, teams[(i + j) % TEAMS]!.key, delays)))));
    }
    await sleep(5_000);
    const rssAfter = rssBytes(pid);
    const heapAfter = await heapUsedBytes(cp.url);
    print(`${streams.length} streams open`);

    print(`making ${RATE} events/s for ${DURATION_S} s…`);
    let made = 0;
    let failed = 0;
    let inFlight = 0;
    const started = Date.now();
    const tagged = new Set<string>();
    while (Date.now() - started < DURATION_S * 1000) {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE) - made;
      for (let n = 0; n < due && inFlight < IN_FLIGHT * 4; n++) {
        const team = teams[made % TEAMS]!;
        const host = team.hosts[Math.floor(made / TEAMS) % HOSTS_PER_TEAM]!;
        const has = tagged.has(host);
        if (has) tagged.delete(host);
        else tagged.add(host);
        made++;
        inFlight++;
        const change = has ? call(cp.url, "DELETE", `/v1/hosts/${host}/tags/bench`, team.key) : call(cp.url, "POST", `/v1/hosts/${host}/tags`, team.key, { tag: "bench" });
        void change.then((res) => void (res.status >= 300 && failed++), () => void failed++).finally(() => inFlight--);
      }
      await sleep(5);
    }
    while (inFlight > 0) await sleep(10);
    const elapsedS = (Date.now() - started) / 1000;
    await sleep(3_000);

    const perTeam = SUBSCRIBERS / TEAMS;
    const expected = (made - failed) * perTeam;
    const received = streams.reduce((sum, stream) => sum + stream.received, 0);
    for (const stream of streams) stream.response.destroy();

    const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
    print(`
events/s made:              ${((made - failed) / elapsedS).toFixed(0)} (target ${RATE}; ${failed} changes failed)
deliveries:                 ${received} of ${expected} (${perTeam} streams per team; ${received === expected ? "none lost" : `${expected - received} missing`})
deliveries/s:               ${(received / elapsedS).toFixed(0)}
delay change → subscriber:  p50 ${percentile(delays, 50)} ms, p99 ${percentile(delays, 99)} ms, max ${Math.max(...delays)} ms
memory per open stream:     ${kib((rssAfter - rssBefore) / SUBSCRIBERS)} resident, ${kib((heapAfter - heapBefore) / SUBSCRIBERS)} heap (${SUBSCRIBERS} streams: ${((rssAfter - rssBefore) / 2 ** 20).toFixed(1)} MiB)`);
  } finally {
    agent.destroy();
    await cp.stop();
  }
}

await main();
