import { serve } from "@hono/node-server";
import { Hono } from "hono";

/** The framework's limit: the heartbeat route answering 204 and doing nothing else. */
const app = new Hono();
app.post("/v1/hosts/:id/heartbeat", (c) => c.body(null, 204));
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: "127.0.0.1" }, () => process.stdout.write("ready\n"));
