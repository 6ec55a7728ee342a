import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "@muster/testkit";
import { killAll, startMain as start, stopMain as stop, waitForOutput as waitFor } from "./support/main-process.js";

/**
 * The control plane as an operator starts it: `main.ts` in its own process,
 * configured by the environment alone. These run on the embedded default, the
 * mode `pnpm start` uses on a fresh machine.
 */
const dirs: string[] = [];
afterAll(() => {
  killAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "muster-process-"));
  dirs.push(dir);
  return dir;
}

describe("main.ts", () => {
  it("prints the admin key once on first start, keeps its data, and shuts down cleanly", async () => {
    const dir = dataDir();
    const port = await freePort();
    const first = start({ MUSTER_DATA_DIR: dir, PORT: String(port) });
    await waitFor(first, /listening/);
    const key = /(msk_[A-Za-z0-9_-]{40,})/.exec(first.output())?.[1];
    expect(key).toBeDefined();

    const me = await fetch(`http://127.0.0.1:${port}/v1/me`, { headers: { authorization: `Bearer ${key}` } });
    expect(me.status).toBe(200);
    const created = await fetch(`http://127.0.0.1:${port}/v1/hosts`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "regular" }),
    });
    expect(created.status).toBe(201);
    expect(await stop(first)).toBe(0);

    const second = start({ MUSTER_DATA_DIR: dir, PORT: String(port) });
    await waitFor(second, /listening/);
    expect(second.output()).not.toContain("msk_");
    const list = await fetch(`http://127.0.0.1:${port}/v1/hosts`, { headers: { authorization: `Bearer ${key}` } });
    expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(1);
    expect(await stop(second)).toBe(0);
  });

  it("holds bodies to 64 KiB over a real socket, whether sized by content-length or chunked", async () => {
    const adminKey = "socket-admin-key-0123456789abcdef0123";
    const port = await freePort();
    const started = start({ MUSTER_DATA_DIR: dataDir(), PORT: String(port), MUSTER_ADMIN_KEY: adminKey });
    await waitFor(started, /listening/);
    const post = (body: string, chunked: boolean) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const headers: Record<string, string> = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
        if (!chunked) headers["content-length"] = String(Buffer.byteLength(body));
        const req = request({ host: "127.0.0.1", port, method: "POST", path: "/v1/teams", headers }, (res) => {
          let text = "";
          res.on("data", (chunk) => (text += chunk));
          res.on("end", () => resolve({ status: res.statusCode!, body: text }));
        });
        req.on("error", reject);
        if (chunked) {
          // Two writes without content-length: Node sends Transfer-Encoding: chunked.
          req.write(body.slice(0, 10));
          req.end(body.slice(10));
        } else req.end(body);
      });
    const oversized = JSON.stringify({ name: "x".repeat(70 * 1024) });
    for (const chunked of [false, true]) {
      const refused = await post(oversized, chunked);
      expect(refused.status).toBe(413);
      expect(JSON.parse(refused.body).error.code).toBe("payload_too_large");
      expect((await post(JSON.stringify({ name: "fits" }), chunked)).status).toBe(201);
    }
    expect(await stop(started)).toBe(0);
  });

  it("listens on MUSTER_LISTEN_HOST only, and says where", async () => {
    const port = await freePort();
    const started = start({ MUSTER_DATA_DIR: dataDir(), PORT: String(port), MUSTER_LISTEN_HOST: "127.0.0.2" });
    await waitFor(started, /listening/);
    expect(started.output()).toContain(`http://127.0.0.2:${port}`);
    expect((await fetch(`http://127.0.0.2:${port}/healthz`)).status).toBe(200);
    // Another loopback address of this machine: listening on every interface would answer here too.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toMatchObject({ cause: { code: "ECONNREFUSED" } });
    expect(await stop(started)).toBe(0);
  });

  it("seeds MUSTER_ADMIN_KEY as the admin's key without printing it", async () => {
    const adminKey = "automation-admin-key-0123456789abcdef";
    const port = await freePort();
    const started = start({ MUSTER_DATA_DIR: dataDir(), PORT: String(port), MUSTER_ADMIN_KEY: adminKey });
    await waitFor(started, /listening/);
    expect(started.output()).not.toContain(adminKey);
    const me = await fetch(`http://127.0.0.1:${port}/v1/me`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(((await me.json()) as { role: string }).role).toBe("admin");
    expect(await stop(started)).toBe(0);
  });

  it("refuses a second process on the same data folder with a message that says what to do", async () => {
    const dir = dataDir();
    const first = start({ MUSTER_DATA_DIR: dir, PORT: String(await freePort()) });
    await waitFor(first, /listening/);
    const second = start({ MUSTER_DATA_DIR: dir, PORT: String(await freePort()) });
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain("in use by another Muster process");
    expect(second.output()).toContain("MUSTER_DATA_DIR");
    expect(await stop(first)).toBe(0);
  });

  it("reports a bad configuration by variable name and exits 1", async () => {
    const started = start({ MUSTER_DATA_DIR: dataDir(), PORT: "http", MUSTER_ADMIN_KEY: "short", MUSTER_OFFLINE_AFTER_S: "10", MUSTER_HEARTBEAT_INTERVAL_S: "30", MUSTER_MASS_OFFLINE_PERCENT: "0" });
    expect(await started.exited).toBe(1);
    const output = started.output();
    expect(output).toContain("PORT must be a whole number");
    expect(output).toContain("MUSTER_ADMIN_KEY must be at least 32 characters");
    expect(output).toContain("MUSTER_OFFLINE_AFTER_S (10) must be longer than MUSTER_HEARTBEAT_INTERVAL_S (30)");
    expect(output).toContain("MUSTER_MASS_OFFLINE_PERCENT must be a whole number from 1 to 100");
    expect(output).not.toMatch(/\n\s+at /);
  });
});
