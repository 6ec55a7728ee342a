import { randomBytes } from "node:crypto";
import { get, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { ROOT, freshStores, startControlPlane, startServer } from "./lib.js";

/**
 * The revocation list under load: REVOKED revoked serials (100,000 by
 * default), CLIENTS clients fetching GET /v1/ca/crl in a loop for DURATION_S,
 * and a prober timing /healthz meanwhile. Also the cost of a change: the
 * DELETE that revokes one more certificate answers once the new list is
 * built, shared and served. The serials are written straight into the
 * database with the control plane stopped (the embedded store admits one
 * process), then it starts on them. The same load against node:http sending
 * a buffer of the same size from memory gives the machine's own limit.
 */
const REVOKED = Number(process.env.CRL_REVOKED ?? 100_000);
const CLIENTS = Number(process.env.CRL_CLIENTS ?? 10);
const DURATION_S = Number(process.env.CRL_DURATION_S ?? 20);
const HEALTH_EVERY_MS = 20;
const mode = process.env.DATABASE_URL ? "PostgreSQL + Redis" : "embedded (PGlite + in-process KV)";

const say = (line = "") => process.stdout.write(`${line}\n`);
const ms = (value: number) => `${value.toFixed(1)} ms`;
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

/** One GET, the body read and dropped; resolves with the time to the last byte and the size. */
function fetchTimed(url: string): Promise<{ ms: number; bytes: number; status: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res: IncomingMessage) => {
      let bytes = 0;
      res.on("data", (chunk: Buffer) => (bytes += chunk.length));
      res.on("end", () => resolve({ ms: performance.now() - started, bytes, status: res.statusCode ?? 0 }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

async function api(url: string, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: res.status === 204 ? null : ((await res.json()) as { host: { id: string } }) };
}

/** REVOKED revoked certificates of one host, plus one live certificate of another (deleted later to make a change). */
async function insertCertificates(query: (text: string, params: unknown[]) => Promise<unknown>, revokedHost: string, liveHost: string) {
  const now = new Date();
  const expires = new Date(now.getTime() + 24 * 3600 * 1000).toISOString();
  const BATCH = 5_000;
  for (let done = 0; done < REVOKED; done += BATCH) {
    const rows = Math.min(BATCH, REVOKED - done);
    const serials = Array.from({ length: rows }, () => randomBytes(16).toString("hex").replace(/^./, "1"));
    await query(
      `insert into host_certificates (serial, host_id, fingerprint, created_at, expires_at, revoked_at)
       select s, $1, s, $2, $3, $2 from unnest($4::text[]) as s`,
      [revokedHost, now.toISOString(), expires, serials],
    );
  }
  const serial = randomBytes(16).toString("hex").replace(/^./, "1");
  await query(`insert into host_certificates (serial, host_id, fingerprint, created_at, expires_at) values ($1, $2, $1, $3, $4)`, [
    serial, liveHost, now.toISOString(), expires,
  ]);
}

const TSX = ["--import", "tsx"];

/** CLIENTS clients fetching the list in a loop for DURATION_S, and a prober timing /healthz meanwhile. */
async function underLoad(url: string) {
  const lists: number[] = [];
  const health: number[] = [];
  let bytes = 0;
  let failures = 0;
  const until = performance.now() + DURATION_S * 1000;
  const client = async () => {
    while (performance.now() < until) {
      const res = await fetchTimed(`${url}/v1/ca/crl`);
      if (res.status !== 200) failures++;
      lists.push(res.ms);
      bytes = res.bytes;
    }
  };
  const prober = async () => {
    while (performance.now() < until) {
      const res = await fetchTimed(`${url}/healthz`);
      if (res.status !== 200) failures++;
      health.push(res.ms);
      await new Promise((resolve) => setTimeout(resolve, HEALTH_EVERY_MS));
    }
  };
  await Promise.all([...Array.from({ length: CLIENTS }, client), prober()]);
  return { lists, health, bytes, failures };
}

async function main(): Promise<void> {
  say(`revocation list: ${REVOKED} revoked serials, ${CLIENTS} clients for ${DURATION_S} s, ${mode}`);
  const stores = await freshStores();
  let plane = await startControlPlane("control plane", {}, stores);
  const revokedHost = (await api(plane.url, plane.adminKey, "POST", "/v1/hosts", { type: "regular" })).json!.host.id;
  const liveHost = (await api(plane.url, plane.adminKey, "POST", "/v1/hosts", { type: "regular" })).json!.host.id;
  await plane.stop();

  const inserting = performance.now();
  if (process.env.DATABASE_URL) {
    const sql = postgres(stores.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    await insertCertificates((text, params) => sql.unsafe(text, params as never[]), revokedHost, liveHost);
    // PostgreSQL's autovacuum analyses a table within a minute of such a burst; the measurement starts at once.
    await sql.unsafe("analyze host_certificates");
    await sql.end();
  } else {
    const db = new PGlite(join(stores.env.MUSTER_DATA_DIR!, "pg"));
    await insertCertificates((text, params) => db.query(text, params), revokedHost, liveHost);
    await db.close();
  }
  say(`  wrote ${REVOKED} revoked certificates in ${ms(performance.now() - inserting)}`);

  // A fresh KV key space: the list the first start shared there predates the rows written behind its back.
  plane = await startControlPlane("control plane", { MUSTER_KV_PREFIX: `${stores.env.MUSTER_KV_PREFIX}again:` }, stores);
  try {
    const first = await fetchTimed(`${plane.url}/v1/ca/crl`);
    say(`  first GET after start (the list built once, or taken from the KV store): ${ms(first.ms)}, ${(first.bytes / 2 ** 20).toFixed(1)} MiB`);
    const deleting = performance.now();
    let rebuilding = true;
    const duringRebuild: number[] = [];
    const watching = (async () => {
      while (rebuilding) {
        duringRebuild.push((await fetchTimed(`${plane.url}/healthz`)).ms);
        await new Promise((resolve) => setTimeout(resolve, HEALTH_EVERY_MS));
      }
    })();
    const deleted = await api(plane.url, plane.adminKey, "DELETE", `/v1/hosts/${liveHost}`);
    rebuilding = false;
    await watching;
    if (deleted.status !== 204) throw new Error(`DELETE answered ${deleted.status}`);
    say(`  DELETE revoking one more certificate, answered once the new list is served: ${ms(performance.now() - deleting)}`);
    say(`  /healthz meanwhile: ${duringRebuild.length} requests, p50 ${ms(percentile(duringRebuild, 50))}, max ${ms(Math.max(...duringRebuild))}`);

    const muster = await underLoad(plane.url);
    const bare = await startServer("node:http", [...TSX, join(ROOT, "bench/servers/static-body.ts")], { BODY_BYTES: String(muster.bytes) }, "stdout");
    const limit = await underLoad(bare.url).finally(() => bare.stop());

    let failures = muster.failures + limit.failures;
    const etag = (await fetch(`${plane.url}/v1/ca/crl`)).headers.get("etag")!;
    const revalidations: number[] = [];
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      const res = await fetch(`${plane.url}/v1/ca/crl`, { headers: { "if-none-match": etag } });
      await res.arrayBuffer();
      if (res.status !== 304) failures++;
      revalidations.push(performance.now() - started);
    }

    say();
    const size = `${(muster.bytes / 2 ** 20).toFixed(1)} MiB`;
    say("| measure | requests | p50 | p99 |");
    say("|---|---|---|---|");
    for (const [name, run] of [["Muster", muster], ["node:http, the same bytes from memory", limit]] as const) {
      say(`| ${name}: GET the list (${size}, ${CLIENTS} clients in a loop) | ${run.lists.length} | ${ms(percentile(run.lists, 50))} | ${ms(percentile(run.lists, 99))} |`);
      say(`| ${name}: GET /healthz meanwhile | ${run.health.length} | ${ms(percentile(run.health, 50))} | ${ms(percentile(run.health, 99))} |`);
    }
    say(`| Muster: GET the list with If-None-Match (304) | ${revalidations.length} | ${ms(percentile(revalidations, 50))} | ${ms(percentile(revalidations, 99))} |`);
    say(`\n  lists a second: Muster ${(muster.lists.length / DURATION_S).toFixed(1)}, node:http ${(limit.lists.length / DURATION_S).toFixed(1)}; ${failures} failures`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    await plane.stop();
    await stores.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String((error as Error).stack ?? error)}\n`);
  process.exit(1);
});
