import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MusterClient } from "@muster/sdk";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { as, runCli, startCli } from "./support/cli.js";
import { bringOnline, makeTeam, unique } from "./support/fixtures.js";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(() => cp?.stop());

async function ok(args: string[], env: Record<string, string>): Promise<string> {
  const result = await runCli(args, env);
  expect(result.stderr, `muster ${args.join(" ")}`).toBe("");
  expect(result.code, `muster ${args.join(" ")}`).toBe(0);
  return result.stdout;
}
const json = async <T = any>(args: string[], env: Record<string, string>): Promise<T> => JSON.parse(await ok([...args, "--json"], env));

async function owner() {
  const team = await makeTeam(cp.url, cp.adminKey);
  return { ...team, env: as(cp.url, team.owner.key), sdk: new MusterClient({ baseUrl: cp.url, apiKey: team.owner.key }) };
}

describe("muster hosts create", () => {
  it("prints the token and the exact muster-agent command, for people and for scripts", async () => {
    const { team, env } = await owner();
    const human = await ok(["hosts", "create", "--tag", "gpu", "--tag", "eu", "--provider", "hetzner", "--agent-address", "10.0.0.7:7070"], env);
    const token = human.match(/^ {2}([0-9a-f]{64})$/m)?.[1];
    expect(token).toBeDefined();
    expect(human).toMatch(new RegExp(`Created host host-\\w+ \\(byoc, team ${team.id}\\)`));
    expect(human).toContain(`  muster-agent --control-plane ${cp.url} --register ${token} --address 10.0.0.7:7070\n`);

    const created = await json(["hosts", "create", "--zone", "fsn1"], env);
    expect(created.registration_token).toMatch(/^[0-9a-f]{64}$/);
    expect(created.host).toMatchObject({ type: "byoc", team_id: team.id, availability_zone: "fsn1", status: "pending" });
    expect(created.agent_command).toBe(`muster-agent --control-plane ${cp.url} --register ${created.registration_token} --address <IP:PORT>`);
  });

  it("refuses a member with the API's forbidden", async () => {
    const { member } = await makeTeam(cp.url, cp.adminKey);
    const { code, stderr } = await runCli(["hosts", "create"], as(cp.url, member.key));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: forbidden: .*\(HTTP 403, request [\w-]+\)\n$/);
  });
});

describe("muster hosts create --wait", () => {
  it("waits until the agent has registered and the host is online, then says so", async () => {
    const { env } = await owner();
    const cli = startCli(["hosts", "create", "--wait", "--tag", "gpu"], env);
    const [, token] = await cli.stdoutMatching(/--register ([0-9a-f]{64})/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(cli.child.exitCode).toBeNull();
    const credentials = await bringOnline(cp.url, token!);

    const { code, stdout, stderr } = await cli.exited;
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`✔ ${credentials.host.id} is online: gpu-box at 10\\.0\\.0\\.7:7070\\n$`));
    // Not a terminal: no spinner frames, just the plain progress line.
    expect(stderr).toBe(`Waiting for ${credentials.host.id} to come online (pending)… press Ctrl-C to stop waiting\n`);
  });

  /** Stops a process group; one that has already gone is fine. */
  function stopGroup(leader: number): void {
    try {
      process.kill(-leader, "SIGTERM");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
    }
  }

  it("prints a muster-agent command that, run as printed by a shell, brings the host online", async () => {
    const { env } = await owner();
    // `muster-agent` on the PATH is the agent's source, run the way testkit runs the control plane.
    const bin = mkdtempSync(join(tmpdir(), "muster-agent-bin-"));
    const tsx = createRequire(import.meta.url).resolve("tsx/cli");
    const agentMain = fileURLToPath(new URL("../../agent/src/main.ts", import.meta.url));
    writeFileSync(join(bin, "muster-agent"), `#!/bin/sh\nexec "${process.execPath}" "${tsx}" "${agentMain}" "$@"\n`);
    chmodSync(join(bin, "muster-agent"), 0o755);
    const cli = startCli(["hosts", "create", "--wait", "--agent-address", "127.0.0.1:7070"], env);
    const [, command] = await cli.stdoutMatching(/^ {2}(muster-agent .*)$/m);
    // Its own process group, so stopping it reaches the agent the shell started, not only the shell.
    const agent = spawn("sh", ["-c", command!], {
      env: { PATH: `${bin}:${process.env.PATH}`, MUSTER_CREDENTIALS_FILE: join(bin, "credentials.json"), MUSTER_LOG_LEVEL: "warn" },
      stdio: "ignore",
      detached: true,
    });
    try {
      const { code, stdout } = await cli.exited;
      expect(code).toBe(0);
      expect(stdout).toMatch(/✔ host-\w+ is online: .+ at 127\.0\.0\.1:7070\n$/);
    } finally {
      const exited = new Promise((resolve) => (agent.exitCode !== null ? resolve(null) : agent.once("exit", resolve)));
      stopGroup(agent.pid!);
      await exited;
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("with --json, prints the creation and then the online host as two JSON lines", async () => {
    const { env } = await owner();
    const cli = startCli(["hosts", "create", "--wait", "--json"], env);
    const [line] = await cli.stdoutMatching(/^.*\n/);
    const created = JSON.parse(line!);
    await bringOnline(cp.url, created.registration_token);
    const { code, stdout, stderr } = await cli.exited;
    expect(code).toBe(0);
    expect(stderr).toBe("");
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ id: created.host.id, status: "online" });
  });

  it("gives up after --timeout with exit code 4", async () => {
    const { env } = await owner();
    const { code, stderr } = await runCli(["hosts", "create", "--wait", "--timeout", "1500ms"], env);
    expect(code).toBe(4);
    expect(stderr).toMatch(/error: host did not become online within 1500 ms \(last seen pending\)\n$/);
  });

  it("stops waiting on Ctrl-C with exit code 130", async () => {
    const { env } = await owner();
    const cli = startCli(["hosts", "create", "--wait"], env);
    await cli.stdoutMatching(/--register [0-9a-f]{64}/);
    cli.child.kill("SIGINT");
    const { code, stderr } = await cli.exited;
    expect(code).toBe(130);
    expect(stderr).toMatch(/error: interrupted\n$/);
  });
});

describe("muster hosts list, get, token, delete", () => {
  it("lists hosts as a table, filtered, or as JSON", async () => {
    const { env, sdk } = await owner();
    const tag = `rack-${unique()}`;
    const a = await sdk.hosts.create({ type: "byoc", tags: [tag] });
    const b = await sdk.hosts.create({ type: "byoc", tags: [tag, "gpu"] });
    await bringOnline(cp.url, b.registration_token);

    const table = (await ok(["hosts", "list", "--tag", tag], env)).trim().split("\n");
    expect(table[0]).toMatch(/^ID +TYPE +STATUS +TEAM +ADDRESS +HOSTNAME +TAGS +LAST SEEN$/);
    expect(table[1]).toMatch(new RegExp(`^${a.host.id} +byoc +pending +team-\\w+ +- +- +${tag} +-$`));
    expect(table[2]).toMatch(new RegExp(`^${b.host.id} +byoc +online +team-\\w+ +10\\.0\\.0\\.7:7070 +gpu-box +(gpu,${tag}|${tag},gpu) +\\d+s ago$`));

    const online = await json<{ id: string }[]>(["hosts", "ls", "--tag", tag, "--status", "online"], env);
    expect(online.map((h) => h.id)).toEqual([b.host.id]);
    // b registered as x86_64 and is stored as amd64: either name finds it.
    for (const arch of ["amd64", "x86_64"]) expect((await json<{ id: string }[]>(["hosts", "ls", "--tag", tag, "--arch", arch], env)).map((h) => h.id)).toEqual([b.host.id]);
    expect(await json(["hosts", "ls", "--tag", tag, "--arch", "arm64"], env)).toEqual([]);

    const empty = await runCli(["hosts", "list", "--tag", `none-${unique()}`], env);
    expect({ code: empty.code, stdout: empty.stdout, stderr: empty.stderr }).toEqual({ code: 0, stdout: "", stderr: "No hosts found.\n" });
  });

  it("shows one host, re-tokens it and deletes it", async () => {
    const { env, sdk } = await owner();
    const created = await sdk.hosts.create({ type: "byoc", provider: "hetzner" });
    await bringOnline(cp.url, created.registration_token);
    const id = created.host.id;

    const details = await ok(["hosts", "get", id], env);
    expect(details).toMatch(new RegExp(`ID: +${id}`));
    expect(details).toMatch(/Status: +online/);
    expect(details).toMatch(/Specs: +amd64, 8 cores, 16384 MB memory, 200 GB disk/);
    expect(await json(["hosts", "get", id], env)).toMatchObject({ id, provider: "hetzner", hostname: "gpu-box" });

    const renewed = await json(["hosts", "token", id], env);
    expect(renewed.registration_token).not.toBe(created.registration_token);
    expect(renewed.agent_command).toContain(`--register ${renewed.registration_token}`);

    expect(await ok(["hosts", "delete", id], env)).toBe(`Deleted host ${id}\n`);
    const gone = await runCli(["hosts", "get", id], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: not_found: /);
  });
});

describe("muster hosts probe", () => {
  it("reports an agent that does not answer, and a host with nothing to call", async () => {
    const { env, sdk } = await owner();
    const pending = await sdk.hosts.create({ type: "byoc" });
    expect(await ok(["hosts", "probe", pending.host.id], env)).toMatch(/Error: +not registered/);

    const created = await sdk.hosts.create({ type: "byoc" });
    const registered = await fetch(`${cp.url}/v1/hosts/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: created.registration_token, address: `127.0.0.1:${await freePort()}`, arch: "x86_64", cpu_cores: 1, memory_mb: 512, disk_gb: 1 }),
    });
    expect(registered.status).toBe(201);
    const human = await ok(["hosts", "probe", created.host.id], env);
    expect(human).toMatch(/Reachable: +no/);
    expect(human).toMatch(/Error: +refused/);
    // One probe per host per 10 s: the JSON form asks about a third host.
    const third = await sdk.hosts.create({ type: "byoc" });
    expect(await json(["hosts", "probe", third.host.id], env)).toMatchObject({ host_id: third.host.id, reachable: false, error: "not registered", certificate: null });
  });
});

describe("muster hosts tag", () => {
  it("adds, lists and removes tags", async () => {
    const { env, sdk } = await owner();
    const { host } = await sdk.hosts.create({ type: "byoc" });
    expect(await ok(["hosts", "tag", "add", host.id, "gpu", "zone=eu"], env)).toBe(`Tagged ${host.id}: gpu, zone=eu\n`);
    expect(await ok(["hosts", "tag", "ls", host.id], env)).toBe("TAG\ngpu\nzone=eu\n");
    expect(await ok(["hosts", "tag", "rm", host.id, "gpu"], env)).toBe(`Untagged ${host.id}: gpu\n`);
    expect(await json(["hosts", "tag", "ls", host.id], env)).toEqual(["zone=eu"]);
  });

  it("passes the API's refusal of a bad tag through, as exit 1 and invalid_request", async () => {
    const { env, sdk } = await owner();
    const { host } = await sdk.hosts.create({ type: "byoc" });
    const { code, stderr } = await runCli(["hosts", "tag", "add", host.id, "Not A Tag"], env);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: invalid_request: .*tag/);
  });
});
