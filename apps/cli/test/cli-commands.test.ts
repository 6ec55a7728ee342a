import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostAgent, MemoryCredentialStore, MusterClient } from "@muster/sdk";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { as, runCli } from "./support/cli.js";
import { makeTeam } from "./support/fixtures.js";

/** `muster hosts command`: a command sent to a real agent (HostAgent) over its channel. */
let cp: ControlPlane;
let env: Record<string, string>;
let hostId: string;
let agent: HostAgent;

beforeAll(async () => {
  cp = await startControlPlane();
  const { owner } = await makeTeam(cp.url, cp.adminKey);
  env = as(cp.url, owner.key);
  const client = new MusterClient({ baseUrl: cp.url, apiKey: owner.key });
  const { host, registration_token } = await client.hosts.create({ type: "byoc" });
  hostId = host.id;
  agent = new HostAgent({
    controlPlane: cp.url,
    credentials: new MemoryCredentialStore(null),
    specs: () => ({ arch: "x86_64", cpu_cores: 1, memory_mb: 512, disk_gb: 1 }),
  });
  agent.onCommand("deploy", (payload) => {
    if (payload.image === "broken") throw new Error("image not found");
    return { deployed: payload.image };
  });
  await agent.register({ token: registration_token, address: "127.0.0.1:7070" });
  const opened = new Promise((resolve) => agent.once("channelOpen", resolve));
  await agent.start();
  await opened;
});
afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
});

describe("muster hosts command", () => {
  it("sends a command, waits for the result and prints it", async () => {
    const human = await runCli(["hosts", "command", hostId, "deploy", "--payload", '{"image":"app:2"}'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/Status:\s+succeeded/);
    expect(human.stdout).toContain('{"deployed":"app:2"}');

    const scripted = await runCli(["hosts", "exec", hostId, "ping", "--json"], env);
    expect(scripted.code, scripted.stderr).toBe(0);
    expect(JSON.parse(scripted.stdout)).toMatchObject({ status: "succeeded", result: { pong: true } });
  });

  it("exits 5 with the host's message when the command fails", async () => {
    const { code, stderr, stdout } = await runCli(["hosts", "command", hostId, "deploy", "--payload", '{"image":"broken"}'], env);
    expect(code).toBe(5);
    expect(stdout).toMatch(/Status:\s+failed/);
    expect(stderr).toMatch(/failed on host-\w+: image not found/);
  });

  it("returns the queued command at once with --no-wait, and refuses a payload that is not a JSON object", async () => {
    const { code, stdout } = await runCli(["hosts", "command", hostId, "ping", "--no-wait", "--json"], env);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ host_id: hostId, type: "ping", status: "queued" });
    const bad = await runCli(["hosts", "command", hostId, "deploy", "--payload", "[1]"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/JSON object/);
  });
});

describe("sending a command at most once", () => {
  it("gives back the first command for a repeated --idempotency-key", async () => {
    const args = ["hosts", "command", hostId, "ping", "--no-wait", "--json", "--idempotency-key", `once-${hostId}`];
    const first = await runCli(args, env);
    const again = await runCli(args, env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(again.stdout).id).toBe(JSON.parse(first.stdout).id);
    const conflict = await runCli(["hosts", "command", hostId, "deploy", "--no-wait", "--idempotency-key", `once-${hostId}`], env);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/conflict: .*Idempotency-Key/);
  });

  it("retries a send whose connection died, with the same Idempotency-Key", async () => {
    const keys: (string | undefined)[] = [];
    const server = createServer((request, response) => {
      keys.push(request.headers["idempotency-key"] as string | undefined);
      if (keys.length === 1) return void request.socket.destroy();
      response.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: "cmd-from-the-retry", status: "queued" }));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { code, stdout, stderr } = await runCli(["hosts", "command", hostId, "ping", "--no-wait", "--json"], as(url, "msk_test"));
      expect(code, stderr).toBe(0);
      expect(JSON.parse(stdout).id).toBe("cmd-from-the-retry");
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys[1]).toBe(keys[0]);
    } finally {
      server.close();
    }
  });
});

describe("muster hosts commands", () => {
  it("lists a host's commands newest first, filtered by status, as a table and as JSON", async () => {
    const failed = await runCli(["hosts", "command", hostId, "deploy", "--payload", '{"image":"broken"}'], env);
    expect(failed.code).toBe(5);
    const human = await runCli(["hosts", "commands", hostId], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.split("\n")[0]).toMatch(/^ID\s+TYPE\s+STATUS\s+SENT\s+FINISHED\s+ERROR/);
    expect(human.stdout).toMatch(/deploy\s+failed .*image not found/);

    const onlyFailed = await runCli(["hosts", "commands", hostId, "--status", "failed", "--json"], env);
    const items = JSON.parse(onlyFailed.stdout) as { status: string; error: string }[];
    expect(items.length).toBeGreaterThanOrEqual(1);
    expect(items.every((c) => c.status === "failed")).toBe(true);
    expect(items[0]!.error).toBe("image not found");

    const limited = await runCli(["hosts", "commands", hostId, "--limit", "1"], env);
    expect(limited.stderr).toMatch(/Showing the first 1 commands/);
    expect((await runCli(["hosts", "commands", hostId, "--status", "running"], env)).code).toBe(2);
  });
});
