import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";

export { TcpBalancer } from "./balancer.js";

/**
 * Starts a real control plane in its own process, the way an operator does, for
 * the tests of the SDK, the CLI and the agent (which must not import the app).
 * It follows the suite's storage mode: with DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_NODES) set it
 * gets a fresh database and its own Redis key prefix, otherwise the embedded
 * default in a temporary data folder.
 */
export interface ControlPlane {
  url: string;
  adminKey: string;
  /** The current process (a new one after restart()). */
  readonly process: ChildProcess;
  /** Its data folder (the embedded database and its key-encryption key live here). */
  dataDir: string;
  /** The environment it was started with (DATABASE_URL, MUSTER_SECRET_KEY, … in PostgreSQL mode). */
  env: Record<string, string>;
  output(): string;
  /** Stops the process (SIGTERM) and starts it again on the same port and stores, as an operator's restart does. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL("../../../apps/control-plane/src/main.ts", import.meta.url));
const TSX_CLI = createRequire(import.meta.url).resolve("tsx/cli");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export interface ThrowawayDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database on the PostgreSQL server at `serverUrl`, dropped (connections and all) by `drop`. */
export async function throwawayDatabase(serverUrl: string, prefix: string): Promise<ThrowawayDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

function httpsReady(url: string, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    httpsGet(url, { ca }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    }).on("error", () => resolve(false));
  });
}

/**
 * `sibling`: another process of the same deployment (its database, Redis key
 * prefix, key-encryption key and admin key), behind the same load balancer;
 * only in PostgreSQL mode. The first one's stop() drops the database.
 */
export async function startControlPlane(env: Record<string, string> = {}, options: { sibling?: ControlPlane } = {}): Promise<ControlPlane> {
  const unique = randomBytes(6).toString("hex");
  const dataDir = mkdtempSync(join(tmpdir(), "muster-cp-"));
  const port = await freePort();
  const adminKey = options.sibling?.adminKey ?? `testkit-admin-${randomBytes(24).toString("hex")}`;
  // Its own settings; the rest of the environment (REDIS_URL among it) is inherited.
  const own: Record<string, string> = {
    MUSTER_ADMIN_KEY: adminKey,
    MUSTER_KV_PREFIX: `testkit-${unique}:`,
    LOG_LEVEL: "warn",
    // Agents in tests listen on loopback, which the control plane refuses to call unless allowed.
    MUSTER_PROBE_ALLOW_CIDRS: "127.0.0.0/8",
    ...options.sibling?.env,
    ...env,
    PORT: String(port),
    MUSTER_DATA_DIR: dataDir,
  };

  let database: ThrowawayDatabase | null = null;
  if (options.sibling) {
    if (!process.env.DATABASE_URL) throw new Error("a second control plane on the same stores needs PostgreSQL + Redis (DATABASE_URL, REDIS_URL)");
  } else if (process.env.DATABASE_URL) {
    database = await throwawayDatabase(process.env.DATABASE_URL, "muster_testkit");
    own.DATABASE_URL = database.url;
    // PostgreSQL mode needs a key-encryption key from outside the database (embedded mode makes its own).
    own.MUSTER_SECRET_KEY ??= randomBytes(32).toString("base64");
  }
  const childEnv: Record<string, string> = { ...(process.env as Record<string, string>), ...own };

  // With MUSTER_TLS_CERT_FILE the control plane serves HTTPS; its (self-signed) certificate is the probe's CA.
  const tlsCa = childEnv.MUSTER_TLS_CERT_FILE ? readFileSync(childEnv.MUSTER_TLS_CERT_FILE) : null;
  const url = `${tlsCa ? "https" : "http"}://127.0.0.1:${port}`;
  let output = "";
  let running = await spawnReady(childEnv, url, tlsCa, (chunk) => (output += chunk), () => output);

  const halt = async () => {
    const { child, exited } = running;
    if (child.exitCode !== null) return;
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  return {
    url,
    adminKey,
    get process() {
      return running.child;
    },
    dataDir,
    env: own,
    output: () => output,
    async restart() {
      await halt();
      running = await spawnReady(childEnv, url, tlsCa, (chunk) => (output += chunk), () => output);
    },
    async stop() {
      await halt();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Starts the control plane's process and waits until /readyz answers. */
async function spawnReady(env: Record<string, string>, url: string, tlsCa: Buffer | null, onOutput: (chunk: string) => void, output: () => string) {
  const child = spawn(process.execPath, [TSX_CLI, MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (chunk) => onOutput(String(chunk)));
  child.stderr!.on("data", (chunk) => onOutput(String(chunk)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`control plane exited at start:\n${output()}`);
    const ready = tlsCa ? await httpsReady(`${url}/readyz`, tlsCa) : await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) return { child, exited };
    if (Date.now() > until) {
      child.kill("SIGKILL");
      throw new Error(`control plane not ready after 60 s:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface SelfSigned {
  certFile: string;
  keyFile: string;
  cert: string;
}

/** A throwaway self-signed certificate for 127.0.0.1 (P-256, one day), made with the openssl command. */
export function selfSignedCertificate(): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), "muster-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyFile, "-out", certFile],
    { stdio: "ignore" },
  );
  return { certFile, keyFile, cert: readFileSync(certFile, "utf8") };
}
