import { PGlite } from "@electric-sql/pglite";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { jwtVerify } from "jose";
import postgres from "postgres";

/**
 * The reference system's heartbeat: verify the host JWT on every request with
 * the raw secret, then one synchronous UPDATE of the host row per beat.
 */
const secret = new TextEncoder().encode(process.env.BENCH_SECRET);
const hostIds: string[] = JSON.parse(process.env.BENCH_HOSTS ?? "[]");

type Exec = (query: string, params: unknown[]) => Promise<unknown>;
let exec: Exec;
if (process.env.DATABASE_URL) {
  const sql = postgres(process.env.DATABASE_URL, { max: 10, onnotice: () => {} });
  exec = (query, params) => sql.unsafe(query, params as never[]);
} else {
  const db = new PGlite();
  exec = (query, params) => db.query(query, params);
}
await exec("create table if not exists bench_hosts (id text primary key, last_heartbeat_at timestamptz)", []);
await exec("truncate bench_hosts", []);
for (const id of hostIds) await exec("insert into bench_hosts (id) values ($1)", [id]);

const app = new Hono();
app.post("/v1/hosts/:id/heartbeat", async (c) => {
  const token = c.req.header("x-host-token");
  if (!token) return c.json({ error: { code: "unauthorized", message: "missing token" } }, 401);
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"] });
    if (payload.typ !== "host") throw new Error("wrong kind");
    if (payload.sub !== c.req.param("id")) return c.json({ error: { code: "forbidden", message: "mismatch" } }, 403);
  } catch {
    return c.json({ error: { code: "unauthorized", message: "bad token" } }, 401);
  }
  await exec("update bench_hosts set last_heartbeat_at = now() where id = $1", [c.req.param("id")]);
  return c.body(null, 204);
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: "127.0.0.1" }, () => process.stdout.write("ready\n"));
