import { randomBytes } from "node:crypto";
import { join } from "node:path";
import autocannon from "autocannon";
import { SignJWT } from "jose";
import { ROOT, cpuSeconds, enrollHosts, median, postgresCpuSeconds, startControlPlane, startServer, type Server } from "./lib.js";

/**
 * The heartbeat path against two yardsticks, in one process tree and one run:
 * bare Hono answering 204 (the framework's limit), the reference system's design
 * (JWT verification and one UPDATE per beat), and Muster. Rounds interleave the
 * variants so drift on the machine hits all of them alike.
 */
const HOSTS = Number(process.env.BENCH_HOSTS_COUNT ?? 1000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const mode = process.env.DATABASE_URL ? "PostgreSQL + Redis" : "embedded (PGlite + in-process KV)";

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
  pgCpuUsPerRequest: number;
  failures: number;
}

async function load(server: Server, tokens: { id: string; token: string }[], seconds: number): Promise<Sample> {
  let i = 0;
  const pid = server.child.pid!;
  const cpuBefore = cpuSeconds(pid);
  const pgBefore = postgresCpuSeconds();
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: "POST",
        setupRequest: (request) => {
          const host = tokens[i++ % tokens.length]!;
          return { ...request, path: `/v1/hosts/${host.id}/heartbeat`, headers: { "x-host-token": host.token } };
        },
      },
    ],
  });
  const total = result["2xx"] + result.non2xx;
  return {
    rps: total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerRequest: ((cpuSeconds(pid) - cpuBefore) * 1e6) / Math.max(1, total),
    pgCpuUsPerRequest: ((postgresCpuSeconds() - pgBefore) * 1e6) / Math.max(1, total),
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

async function main() {
  process.stdout.write(`Heartbeat benchmark — ${mode}; ${HOSTS} hosts, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${DURATION_S} s\n`);

  const muster = await startControlPlane("muster");
  process.stdout.write(`enrolling ${HOSTS} hosts through the API…\n`);
  const hosts = await enrollHosts(muster.url, muster.adminKey, HOSTS, 16);

  const secret = randomBytes(32).toString("hex");
  const key = new TextEncoder().encode(secret);
  const referenceTokens = await Promise.all(
    hosts.map(async (host) => ({
      id: host.id,
      token: await new SignJWT({ typ: "host", host_id: host.id })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(host.id)
        .setIssuedAt()
        .setExpirationTime("2h")
        .sign(key),
    })),
  );
  const tsx = ["--import", "tsx"];
  const bare = await startServer("bare Hono 204", [...tsx, join(ROOT, "bench/servers/bare.ts")], {}, "stdout");
  const reference = await startServer(
    "reference: verify + UPDATE per beat",
    [...tsx, join(ROOT, "bench/servers/reference.ts")],
    { BENCH_SECRET: secret, BENCH_HOSTS: JSON.stringify(hosts.map((h) => h.id)) },
    "stdout",
  );

  const variants: { server: Server; tokens: { id: string; token: string }[] }[] = [
    { server: bare, tokens: hosts },
    { server: reference, tokens: referenceTokens },
    { server: muster, tokens: hosts },
  ];
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.server.name, []]));
  try {
    for (const variant of variants) await load(variant.server, variant.tokens, 2);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const variant of variants) {
        const sample = await load(variant.server, variant.tokens, DURATION_S);
        samples.get(variant.server.name)!.push(sample);
        process.stdout.write(`round ${round}/${ROUNDS} ${variant.server.name}: ${Math.round(sample.rps)} req/s\n`);
      }
    }
  } finally {
    for (const variant of variants) await variant.server.stop();
  }

  const summary = variants.map(({ server }) => {
    const runs = samples.get(server.name)!;
    return {
      name: server.name,
      rps: median(runs.map((s) => s.rps)),
      p50: median(runs.map((s) => s.p50)),
      p99: median(runs.map((s) => s.p99)),
      cpu: median(runs.map((s) => s.cpuUsPerRequest)),
      pgCpu: median(runs.map((s) => s.pgCpuUsPerRequest)),
      failures: runs.reduce((sum, s) => sum + s.failures, 0),
    };
  });
  const baseline = summary[0]!;
  const rows = summary.map((s) => [
    s.name,
    Math.round(s.rps).toLocaleString("en"),
    (s.rps / baseline.rps).toFixed(2),
    `${s.p50} / ${s.p99}`,
    s.cpu.toFixed(0),
    (s.cpu / baseline.cpu).toFixed(2),
    s.pgCpu.toFixed(0),
    String(s.failures),
  ]);
  const header = ["variant", "req/s", "× bare", "p50 / p99 ms", "server CPU µs/req", "× bare CPU", "PostgreSQL CPU µs/req", "failures"];
  const table = [header, header.map((h) => "-".repeat(h.length)), ...rows];
  process.stdout.write("\n" + table.map((row) => `| ${row.join(" | ")} |`).join("\n") + "\n");
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
