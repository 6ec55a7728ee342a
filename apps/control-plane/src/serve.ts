import { fileURLToPath } from "node:url";
import pino from "pino";
import { ConfigError, loadConfig } from "./config.js";
import { DataDirError } from "./db/client.js";
import { createHttpServer } from "./http/server.js";
import { logSerializers } from "./log.js";
import { buildRuntime, openStores } from "./runtime.js";
import { SecretKeyError } from "./secrets/sealer.js";
import { loadServerTls } from "./tls.js";
import { releaseYoungGeneration } from "./young-generation.js";

// This module sits one folder below the app root both as source and when bundled into dist/.
const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));

function fail(message: string): never {
  process.stderr.write(`muster: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  // Everything this process writes (the embedded database, its key-encryption key) is its owner's alone.
  process.umask(0o077);
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  let tls;
  try {
    tls = loadServerTls(config);
  } catch (error) {
    fail(`cannot load MUSTER_TLS_CERT_FILE / MUSTER_TLS_KEY_FILE: ${(error as Error).message}`);
  }
  config = { ...config, serverCertificatePin: tls?.pin ?? null };
  const logger = pino({
    level: config.logLevel,
    serializers: logSerializers,
    ...(process.stdout.isTTY ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss" } } } : {}),
  });

  let stores;
  try {
    stores = await openStores(config);
  } catch (error) {
    if (error instanceof DataDirError) fail(error.message);
    fail(`cannot open the stores: ${(error as Error).message}`);
  }
  let runtime;
  try {
    runtime = await buildRuntime({ config, logger, stores, migrationsFolder: MIGRATIONS });
  } catch (error) {
    if (!(error instanceof SecretKeyError)) throw error;
    await stores.database.close().catch(() => {});
    fail(error.message);
  }

  if (runtime.bootstrap.created && !runtime.bootstrap.seeded) {
    process.stdout.write(
      [
        "",
        "  Muster is bootstrapped. The admin API key, shown this once:",
        "",
        `    ${runtime.bootstrap.key}`,
        "",
        "  Keep it safe; use it as 'Authorization: Bearer <key>'.",
        "",
      ].join("\n") + "\n",
    );
  }

  await runtime.start();
  const server = createHttpServer(runtime.app.fetch, runtime.deps, tls);
  server.once("error", (error) => fail(`cannot listen on ${config.listenHost} port ${config.port} (MUSTER_LISTEN_HOST, PORT): ${error.message}`));
  server.listen(config.port, config.listenHost, () => {
    const host = config.listenHost.includes(":") ? `[${config.listenHost}]` : config.listenHost;
    logger.info(
      { host: config.listenHost, port: config.port, database: stores.database.kind, kv: config.redisClusterNodes ? "redis-cluster" : config.redisUrl ? "redis" : "in-process", certificate_pin: tls?.pin },
      `control plane listening on ${tls ? "https" : "http"}://${host}:${config.port} (API reference at /docs)`,
    );
  });

  runtime.channels.attach(server);
  releaseYoungGeneration();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.close();
    await runtime.stop();
    await stores.kv.close();
    await stores.database.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

main().catch((error: unknown) => fail(`failed to start: ${(error as Error).stack ?? String(error)}`));
