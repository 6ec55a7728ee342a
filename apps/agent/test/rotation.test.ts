import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import { ensureBuilt } from "../scripts/ensure-built.js";

/*
 * The keys rotating under a running fleet of the built muster-agent: the
 * signing key, then the CA (one agent stopped throughout), then a look for
 * secrets where they must never be. With PostgreSQL + Redis, two control
 * planes share the stores and the fleet is split between them, so every
 * change crosses processes. The steps build on each other.
 */

const POSTGRES = Boolean(process.env.DATABASE_URL);
const FLEET = 4;

interface Line {
  level: string;
  msg: string;
  [field: string]: unknown;
}

interface Agent {
  hostId: string;
  address: string;
  credentialsFile: string;
  controlPlane: ControlPlane;
  child: ChildProcess;
  /** Everything it printed, across its runs. */
  output: string;
  exited: Promise<number | null>;
}

let planes: ControlPlane[];
let work: string;
let binary: string;
const agents: Agent[] = [];
/** Every secret seen, to look for later where it must not be. */
const secrets = new Set<string>();
/** Every error envelope the control planes answered with. */
const envelopes: string[] = [];

beforeAll(async () => {
  const built = ensureBuilt();
  // Each agent is probed several times in a few seconds: no per-host probe interval.
  const settings = { MUSTER_HEARTBEAT_INTERVAL_S: "1", MUSTER_OFFLINE_AFTER_S: "3", MUSTER_PROBE_INTERVAL_S: "0", LOG_LEVEL: "debug" };
  const first = await startControlPlane(settings);
  planes = POSTGRES ? [first, await startControlPlane({}, { sibling: first })] : [first];
  work = mkdtempSync(join(os.tmpdir(), "muster-rotation-"));
  binary = join(work, "muster-agent");
  copyFileSync(built, binary);
  secrets.add(first.adminKey);
  for (let i = 0; i < FLEET; i++) agents.push(await enroll(i));
  await waitFor("the fleet online, each with its channel and mTLS endpoint", async () => {
    for (const agent of agents) {
      if (!logs(agent).some((line) => line.msg.startsWith("agent channel open")) || !logs(agent).some((line) => line.msg === "mTLS endpoint listening")) return false;
      if ((await api("GET", `/v1/hosts/${agent.hostId}`)).json.status !== "online") return false;
    }
    return true;
  });
}, 180_000);

afterAll(async () => {
  for (const agent of agents) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
  for (const plane of [...(planes ?? [])].reverse()) await plane.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(agent: Omit<Agent, "child" | "exited">, args: string[]): Pick<Agent, "child" | "exited"> {
  const child = spawn(binary, ["--control-plane", agent.controlPlane.url, "--credentials-file", agent.credentialsFile, "--log-level", "debug", ...args], {
    cwd: work,
    env: { PATH: "/nonexistent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  child.stdout!.on("data", (chunk) => ((agent as Agent).output += chunk));
  child.stderr!.on("data", (chunk) => ((agent as Agent).output += chunk));
  return { child, exited };
}

async function enroll(i: number): Promise<Agent> {
  const controlPlane = planes[i % planes.length]!;
  const created = await api("POST", "/v1/hosts", { type: "regular" });
  secrets.add(created.json.registration_token);
  const agent = { hostId: created.json.host.id, address: `127.0.0.1:${await freePort()}`, credentialsFile: join(work, `agent-${i}`, "credentials.json"), controlPlane, output: "" };
  return Object.assign(agent, run(agent, ["--register", created.json.registration_token, "--address", agent.address]));
}

function restart(agent: Agent): void {
  Object.assign(agent, run(agent, []));
}

/** The JSON log lines an agent printed (from `since`, a length of its output). */
function logs(agent: Agent, since = 0): Line[] {
  return agent.output
    .slice(since)
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Line);
}

const beats = (agent: Agent) => logs(agent).filter((line) => line.msg === "heartbeat accepted").length;

/** The agent's saved credentials, noting their secrets. */
function saved(agent: Agent) {
  const credentials = JSON.parse(readFileSync(agent.credentialsFile, "utf8"));
  for (const secret of [credentials.token, credentials.refresh_token, credentials.tls.private_key]) secrets.add(secret);
  return credentials as { token: string; tls: { certificate: string; ca_certificate: string; private_key: string } };
}

async function api(method: string, path: string, body?: unknown, via = planes[0]!): Promise<{ status: number; json: any }> {
  const response = await fetch(via.url + path, {
    method,
    headers: { authorization: `Bearer ${via.adminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status >= 400) envelopes.push(text);
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function waitFor(what: string, check: () => unknown, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sends `refresh_credentials` to each agent through the control plane it does not talk to, and waits until each did it. */
async function refreshAll(fleet: Agent[]): Promise<void> {
  const sent = await Promise.all(
    fleet.map(async (agent) => {
      const via = planes[(planes.indexOf(agent.controlPlane) + 1) % planes.length]!;
      const { status, json } = await api("POST", `/v1/hosts/${agent.hostId}/commands`, { type: "refresh_credentials" }, via);
      expect(status).toBe(201);
      return { agent, id: json.id as string };
    }),
  );
  for (const { agent, id } of sent) {
    await waitFor(`${agent.hostId} to refresh`, async () => (await api("GET", `/v1/hosts/${agent.hostId}/commands/${id}`)).json.status === "succeeded");
  }
}

const kidOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString("utf8")).kid as string;
const issuedBy = (pem: string, ca: X509Certificate) => new X509Certificate(pem).verify(ca.publicKey);
const certificatesIn = (bundle: string) => bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!.map((pem) => new X509Certificate(pem));

async function probe(agent: Agent): Promise<{ reachable: boolean; error: string | null }> {
  const { status, json } = await api("POST", `/v1/hosts/${agent.hostId}/probe`);
  expect(status).toBe(200);
  return json;
}

/** Beats refused, or the channel cut, for want of valid credentials, in an agent's log. */
const REFUSED = /^(heartbeat refused|heartbeat failed|agent channel dropped)/;

/** HTTP heartbeats each control plane refused (401/403), from its /metrics. */
async function refusedBeats(): Promise<number> {
  let total = 0;
  for (const plane of planes) {
    const text = await (await fetch(`${plane.url}/metrics`)).text();
    for (const match of text.matchAll(/^muster_http_requests_total\{[^}]*route="\/v1\/hosts\/:id\/heartbeat"[^}]*status="(40[13])"[^}]*\} (\d+)$/gm)) total += Number(match[2]);
  }
  return total;
}

describe("under a running fleet of muster-agent processes", () => {
  it("rotates the signing key: new tokens carry the new key from every control plane, old ones keep working, no beat is refused", async () => {
    const before = new Map(agents.map((agent) => [agent, kidOf(saved(agent).token)]));
    const { status, json } = await api("POST", "/v1/system/signing-keys/rotate");
    expect(status).toBe(200);
    const kid = json.current.kid;
    expect(json.retiring.map((key: { kid: string }) => key.kid)).toEqual([...new Set(before.values())]);

    // Half the fleet refreshes at once; the other half keeps beating with tokens of the earlier key.
    const [refreshed, waiting] = [agents.slice(0, FLEET / 2), agents.slice(FLEET / 2)];
    await refreshAll(refreshed);
    for (const agent of refreshed) expect(kidOf(saved(agent).token)).toBe(kid);
    const counts = new Map(agents.map((agent) => [agent, beats(agent)]));
    await waitFor("three more beats from every agent", () => agents.every((agent) => beats(agent) >= counts.get(agent)! + 3));
    for (const agent of waiting) expect(kidOf(saved(agent).token)).toBe(before.get(agent));
    await refreshAll(waiting);
    for (const agent of waiting) expect(kidOf(saved(agent).token)).toBe(kid);

    for (const agent of agents) expect(logs(agent).filter((line) => REFUSED.test(line.msg))).toEqual([]);
    expect(await refusedBeats()).toBe(0);
  });

  it("rotates the CA with agents online and one stopped throughout: all end on the new CA, probes get through all along", async () => {
    const [online, stopped] = [agents.slice(0, FLEET - 1), agents[FLEET - 1]!];
    stopped.child.kill("SIGTERM");
    expect(await stopped.exited).toBe(0);
    const oldCa = certificatesIn((await api("GET", "/v1/ca")).json.certificate)[0]!;

    const started = await api("POST", "/v1/system/ca/rotate", { action: "start" }, planes.at(-1));
    expect(started.status).toBe(200);
    expect(started.json.phase).toBe("rotating");
    // Announced to every control plane: each serves both CAs a moment later.
    for (const plane of planes) {
      await waitFor("the bundle of both CAs", async () => certificatesIn((await api("GET", "/v1/ca", undefined, plane)).json.certificate).length === 2, 5_000);
    }
    const [newCa, previous] = certificatesIn((await api("GET", "/v1/ca")).json.certificate);
    expect(previous!.fingerprint256).toBe(oldCa.fingerprint256);

    // Before they refresh the agents trust the old CA only: the control plane calls them with the old CA's certificate.
    for (const agent of online) expect(await probe(agent)).toMatchObject({ reachable: true, error: null });
    await refreshAll(online);
    for (const agent of online) {
      const tls = saved(agent).tls;
      expect(issuedBy(tls.certificate, newCa!)).toBe(true);
      expect(certificatesIn(tls.ca_certificate).map((cert) => cert.fingerprint256)).toEqual([newCa!.fingerprint256, oldCa.fingerprint256]);
      expect(await probe(agent)).toMatchObject({ reachable: true, error: null });
    }

    await waitFor("the stopped agent's host to go offline", async () => (await api("GET", `/v1/hosts/${stopped.hostId}`)).json.status === "offline");
    expect((await api("GET", "/v1/system/ca")).json).toMatchObject({ phase: "rotating", hosts_on_previous_ca: 1, online_hosts_on_previous_ca: 0 });
    const completed = await api("POST", "/v1/system/ca/rotate", { action: "complete" });
    expect(completed.status).toBe(200);
    expect(completed.json).toMatchObject({ phase: "standby", previous: null, active: { fingerprint_sha256: newCa!.fingerprint256.replace(/:/g, "").toLowerCase() } });
    expect(certificatesIn((await api("GET", "/v1/ca")).json.certificate)).toHaveLength(1);

    // Back after the rotation: its token is refused once, and it re-enrols through its refresh token on its own.
    const since = stopped.output.length;
    restart(stopped);
    await waitFor("the returning agent to refresh", () => logs(stopped, since).some((line) => line.msg === "credentials refreshed" && line.reason === "unauthorized"));
    await waitFor("its endpoint", () => logs(stopped, since).some((line) => line.msg === "mTLS endpoint listening"));
    for (const agent of agents) {
      const tls = saved(agent).tls;
      expect(issuedBy(tls.certificate, newCa!), agent.hostId).toBe(true);
      expect(issuedBy(tls.certificate, oldCa), agent.hostId).toBe(false);
      expect(await probe(agent)).toMatchObject({ reachable: true, error: null });
      expect((await api("GET", `/v1/hosts/${agent.hostId}`)).json.status).toBe("online");
    }
  });

  it("leaves no secret in any log, /metrics, error envelope or the audit log after all of that", async () => {
    // A few refusals, whose envelopes must not echo what was sent.
    const anonymous = async (path: string, body: unknown) => {
      const response = await fetch(planes[0]!.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      envelopes.push(await response.text());
    };
    const victim = saved(agents[0]!);
    await anonymous("/v1/hosts/register", { token: [...secrets].find((s) => /^[0-9a-f]{64}$/.test(s)), address: "127.0.0.1:1", arch: "amd64", cpu_cores: 1, memory_mb: 1, disk_gb: 1 });
    await anonymous("/v1/hosts/auth/refresh", { refresh_token: JSON.parse(readFileSync(agents[0]!.credentialsFile, "utf8")).refresh_token, csr: "not a csr" });
    await anonymous("/v1/hosts/auth/refresh", { refresh_token: `${victim.token}x` });
    envelopes.push(await (await fetch(`${planes[0]!.url}/v1/me`, { headers: { authorization: `Bearer ${planes[0]!.adminKey}x` } })).text());
    envelopes.push(await (await fetch(`${planes[0]!.url}/v1/me`, { headers: { "x-host-token": victim.token } })).text());
    expect(envelopes.length).toBeGreaterThanOrEqual(5);

    const audit: unknown[] = [];
    for (let cursor: string | null = null; ; ) {
      const page: { json: { items: unknown[]; next_cursor: string | null } } = await api("GET", `/v1/audit?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      audit.push(...page.json.items);
      if (!(cursor = page.json.next_cursor)) break;
    }
    const kek = planes[0]!.env.MUSTER_SECRET_KEY ?? readFileSync(join(planes[0]!.dataDir, "secret.key"), "utf8").trim();
    secrets.add(kek);
    const places: Record<string, string> = {
      "the audit log": JSON.stringify(audit),
      "error envelopes": envelopes.join("\n"),
    };
    for (const [i, plane] of planes.entries()) {
      places[`control plane ${i}'s log`] = plane.output();
      places[`control plane ${i}'s /metrics`] = await (await fetch(`${plane.url}/metrics`)).text();
    }
    for (const agent of agents) places[`${agent.hostId}'s log`] = agent.output;
    expect(places["control plane 0's log"]).toContain("host-token signing key rotated");

    const found: string[] = [];
    for (const [where, text] of Object.entries(places)) {
      if (text.includes("PRIVATE KEY")) found.push(`PRIVATE KEY in ${where}`);
      for (const secret of secrets) {
        for (const piece of [secret, ...secret.split("\n").filter((line) => line.length >= 40)]) {
          if (text.includes(piece)) found.push(`${piece.slice(0, 12)}… in ${where}`);
        }
      }
    }
    expect(secrets.size).toBeGreaterThan(3 * FLEET);
    expect(found).toEqual([]);
  });
});
