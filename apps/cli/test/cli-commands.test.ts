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
