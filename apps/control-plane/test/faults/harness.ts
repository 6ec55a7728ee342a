import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@muster/testkit";
import postgres, { type Sql } from "postgres";
import { killRedisServer, redisPidFile, services } from "../support/redis-server.js";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
export const CP_MAIN = join(REPO, "apps/control-plane/dist/main.js");
export const AGENT_MAIN = join(REPO, "apps/agent/dist/muster-agent.cjs");

/** Small windows keep the suite fast: a beat a second, offline after 3 s of silence. */
export const INTERVAL_S = 1;
export const WINDOW_S = 3;

export interface FaultServices {
  servicesDir: string;
  pgPort: number;
  redisPort: number;
  databaseUrl: string;
  redisUrl: string;
  workDir: string;
  reportFile: string;
}

export interface FaultRecord {
  scenario: string;
  injection: string;
  observations: string[];
  verdict: "held" | "BROKEN";
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` answers true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * Runs one scenario and appends its record to the report: what was injected,
 * what was observed, and whether the property held (the body's assertions).
 */
export async function scenario(
  services: FaultServices,
  name: string,
  injection: string,
  body: (observe: (observation: string) => void) => Promise<void>,
): Promise<void> {
  const observations: string[] = [];
  let verdict: FaultRecord["verdict"] = "BROKEN";
  try {
    await body((observation) => observations.push(observation));
    verdict = "held";
  } catch (error) {
    observations.push(`failed: ${(error as Error).message.split("\n")[0]}`);
    throw error;
  } finally {
    const record: FaultRecord = { scenario: name, injection, observations, verdict };
    appendFileSync(services.reportFile, `${JSON.stringify(record)}\n`);
  }
}

/** Every process a test file started, so afterAll can kill whatever is left. */
export class Processes {
  private readonly children = new Set<ChildProcess>();

  spawn(command: string, args: string[], env: Record<string, string>, logFile: string): ChildProcess {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const log = (chunk: Buffer) => appendFileSync(logFile, chunk);
    child.stdout!.on("data", log);
    child.stderr!.on("data", log);
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.children].map((child) => stopChild(child, "SIGKILL")));
  }
}

/** Sends `signal` and waits for the exit (SIGKILL after 10 s). */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface ControlPlaneOptions {
  /** Its stores: PostgreSQL + Redis, or the embedded default in `dataDir`. */
  databaseUrl: string | null;
  redisUrl: string | null;
  /** A Redis Cluster instead of redisUrl (REDIS_CLUSTER_NODES). */
  redisClusterNodes: string | null;
  dataDir: string;
  kvPrefix: string;
  adminKey: string;
  /** The key-encryption key, for PostgreSQL mode (the embedded mode makes its own in the data folder). */
  secretKey: string;
  port: number;
  logFile: string;
}

/** A control plane process (the built dist/main.js), with the suite's small windows. */
export class ControlPlane {
  readonly url: string;

  private constructor(
    readonly options: ControlPlaneOptions,
    readonly child: ChildProcess,
  ) {
    this.url = `http://127.0.0.1:${options.port}`;
  }

  /** Options for a new control plane of its own: a fresh database and Redis key prefix, or a fresh data folder. */
  static async options(services: FaultServices, stores: "postgres" | "embedded", name: string): Promise<ControlPlaneOptions> {
    const unique = randomBytes(6).toString("hex");
    const dir = join(services.workDir, `${name}-${unique}`);
    mkdirSync(dir, { recursive: true });
    let databaseUrl: string | null = null;
    if (stores === "postgres") {
      const database = `faults_${unique}`;
      await admin(services, (sql) => sql.unsafe(`create database ${database}`));
      databaseUrl = services.databaseUrl.replace(/\/[^/]*$/, `/${database}`);
    }
    return {
      databaseUrl,
      redisUrl: stores === "postgres" ? services.redisUrl : null,
      redisClusterNodes: null,
      dataDir: dir,
      kvPrefix: `faults-${unique}:`,
      adminKey: `faults-admin-${randomBytes(24).toString("hex")}`,
      secretKey: randomBytes(32).toString("base64"),
      port: await freePort(),
      logFile: join(dir, "control-plane.log"),
    };
  }

  /** Options for another control plane on the same stores (a second process behind the same load balancer). */
  static async sibling(options: ControlPlaneOptions, name: string): Promise<ControlPlaneOptions> {
    return { ...options, port: await freePort(), logFile: join(options.dataDir, `${name}.log`) };
  }

  /** Starts it and waits until /readyz answers 200. */
  static async start(processes: Processes, options: ControlPlaneOptions): Promise<ControlPlane> {
    const env: Record<string, string> = {
      PORT: String(options.port),
      MUSTER_DATA_DIR: options.dataDir,
      MUSTER_ADMIN_KEY: options.adminKey,
      MUSTER_KV_PREFIX: options.kvPrefix,
      MUSTER_HEARTBEAT_INTERVAL_S: String(INTERVAL_S),
      MUSTER_OFFLINE_AFTER_S: String(WINDOW_S),
      // The agents listen on loopback, which the control plane refuses to call unless allowed.
      MUSTER_PROBE_ALLOW_CIDRS: "127.0.0.0/8",
      LOG_LEVEL: "info",
      DATABASE_URL: options.databaseUrl ?? "",
      MUSTER_SECRET_KEY: options.databaseUrl ? options.secretKey : "",
      REDIS_URL: options.redisUrl ?? "",
      REDIS_CLUSTER_NODES: options.redisClusterNodes ?? "",
    };
    const child = processes.spawn(process.execPath, [CP_MAIN], env, options.logFile);
    const plane = new ControlPlane(options, child);
    const ready = `the control plane on port ${options.port} to be ready (log: ${options.logFile})`;
    await waitFor(ready, async () => child.exitCode !== null || (await fetch(`${plane.url}/readyz`)).status === 200, 60_000).catch(
      (error: unknown) => {
        child.kill("SIGKILL");
        throw error;
      },
    );
    if (child.exitCode !== null) {
      throw new Error(`the control plane exited with ${child.exitCode}: ${readFileSync(options.logFile, "utf8").slice(-2000)}`);
    }
    return plane;
  }

  async readyz(): Promise<{ status: number; message: string }> {
    const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { error?: { message: string } };
    return { status: res.status, message: body.error?.message ?? "ready" };
  }

  async api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.options.adminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  /** The hosts' statuses, by ID. */
  async statuses(): Promise<Map<string, string>> {
    const res = await this.api<{ items: { id: string; status: string }[] }>("GET", "/v1/hosts?limit=500");
    if (res.status !== 200) throw new Error(`GET /v1/hosts answered ${res.status}`);
    return new Map(res.body.items.map((host) => [host.id, host.status]));
  }

  /** The audit entries of one action (e.g. host.offline). */
  async audit(action: string): Promise<{ target_id: string; created_at: string }[]> {
    const res = await this.api<{ items: { target_id: string; created_at: string }[] }>("GET", `/v1/audit?action=${action}&limit=500`);
    if (res.status !== 200) throw new Error(`GET /v1/audit answered ${res.status}`);
    return res.body.items;
  }

  async createHost(): Promise<{ id: string; token: string }> {
    const res = await this.api<{ host: { id: string }; registration_token: string }>("POST", "/v1/hosts", { type: "regular" });
    if (res.status !== 201) throw new Error(`POST /v1/hosts answered ${res.status}`);
    return { id: res.body.host.id, token: res.body.registration_token };
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await stopChild(this.child, signal);
  }
}

/** A real muster-agent process (the built dist/muster-agent.cjs), registered to a host of `plane` (through `via`, a load balancer, when given). */
export class AgentProcess {
  private constructor(
    readonly hostId: string,
    readonly child: ChildProcess,
    /** Its log: JSON lines. */
    readonly logFile: string,
  ) {}

  static async start(processes: Processes, plane: ControlPlane, dir: string, via?: { url: string; logLevel: string }): Promise<AgentProcess> {
    const { id, token } = await plane.createHost();
    const port = await freePort();
    const args = [
      AGENT_MAIN,
      "--control-plane", via?.url ?? plane.url,
      "--register", token,
      "--address", `127.0.0.1:${port}`,
      "--listen", `127.0.0.1:${port}`,
      "--credentials-file", join(dir, `${id}.json`),
      "--log-format", "json",
      ...(via ? ["--log-level", via.logLevel] : []),
    ];
    const logFile = join(dir, `${id}.log`);
    return new AgentProcess(id, processes.spawn(process.execPath, args, {}, logFile), logFile);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/** Runs `work` with a one-connection client to the PostgreSQL server's admin database. */
export async function admin<T>(services: FaultServices, work: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = postgres(services.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The store faults: Redis killed by PID and started again, PostgreSQL stopped and started again, each on its port and folder. */
export class StoreFaults {
  constructor(private readonly services: FaultServices) {}

  /** SIGKILL by the PID services.sh recorded; returns once the port is free. */
  async killRedis(): Promise<void> {
    await killRedisServer(redisPidFile(this.services.servicesDir));
  }

  startRedis(): void {
    this.startOne("redis");
  }

  stopPostgres(mode: "fast" | "immediate"): void {
    const pgCtl = ["pg_ctl", "stop", "-D", join(this.services.servicesDir, "pg"), "-m", mode, "-s"];
    const [command, ...args] = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...pgCtl] : pgCtl;
    execFileSync(command!, args, { stdio: "inherit" });
  }

  startPostgres(): void {
    this.startOne("postgres");
  }

  /** Starts whichever store a failed scenario left down, so the next one begins with both. */
  async restore(): Promise<void> {
    if (!(await listening(this.services.redisPort))) this.startRedis();
    if (!(await listening(this.services.pgPort))) this.startPostgres();
  }

  private startOne(store: "postgres" | "redis"): void {
    services([`start-${store}`, this.services.servicesDir], { PG_PORT: this.services.pgPort, REDIS_PORT: this.services.redisPort });
  }
}

/** `size` real agents registered to `plane` (or to the planes in turn), waited for until every host is online. */
export async function startFleet(processes: Processes, planes: ControlPlane[], size: number, dir: string): Promise<AgentProcess[]> {
  const agents: AgentProcess[] = [];
  for (let i = 0; i < size; i++) agents.push(await AgentProcess.start(processes, planes[i % planes.length]!, dir));
  await waitFor(`all ${size} agents online`, async () => {
    const statuses = await planes[0]!.statuses();
    return agents.every((agent) => statuses.get(agent.hostId) === "online");
  });
  return agents;
}

/** Each host's last heartbeat as the operator API shows it (ms since the epoch; 0 for none). */
export async function lastBeats(plane: ControlPlane, hostIds: string[]): Promise<number[]> {
  const res = await plane.api<{ items: { id: string; last_heartbeat_at: string | null }[] }>("GET", "/v1/hosts?limit=500");
  if (res.status !== 200) throw new Error(`GET /v1/hosts answered ${res.status}`);
  const byId = new Map(res.body.items.map((host) => [host.id, host.last_heartbeat_at ? Date.parse(host.last_heartbeat_at) : 0]));
  return hostIds.map((id) => byId.get(id) ?? 0);
}

/**
 * The property every scenario checks last: none of these hosts was ever marked
 * offline (no host.offline audit entry), and each is online now.
 */
export async function expectNoneMarkedOffline(plane: ControlPlane, hostIds: string[]): Promise<string> {
  const ids = new Set(hostIds);
  const marked = (await plane.audit("host.offline")).filter((entry) => ids.has(entry.target_id));
  const statuses = await plane.statuses();
  const notOnline = hostIds.filter((id) => statuses.get(id) !== "online");
  if (marked.length > 0 || notOnline.length > 0) {
    throw new Error(`${marked.length} host.offline audit entries; not online now: ${notOnline.length} of ${hostIds.length}`);
  }
  return `0 of ${hostIds.length} hosts marked offline`;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}
