import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { defaultConfig, type Config } from "../../src/config.js";
import type { Clock } from "../../src/lib/clock.js";
import { logSerializers } from "../../src/log.js";
import { buildRuntime, type Runtime } from "../../src/runtime.js";
import { HttpClient } from "./http.js";
import { createTestStores, type TestStores } from "./stores.js";

export const MIGRATIONS = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** The key-encryption key of test control planes; apps that share stores share it, as a deployment's processes do. */
export const TEST_SECRET_KEY = Buffer.alloc(32, 7).toString("base64");

export interface TestApp {
  runtime: Runtime;
  stores: TestStores;
  http: HttpClient;
  adminKey: string;
  config: Config;
  close(): Promise<void>;
}

export interface TestAppOptions {
  config?: Partial<Config>;
  clock?: Clock;
  /** Share another app's stores: several control planes on one database and KV. */
  stores?: TestStores;
  /** Start the background loops (sweeper, flush); tests with a fake clock drive them by hand. */
  startLoops?: boolean;
  /** Where the control plane logs (default: nowhere, or TEST_LOG_LEVEL's level to stdout). */
  logger?: Logger;
}

/** Builds a control plane through the same factory main.ts uses, on real stores, with a seeded admin key. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const ownsStores = options.stores === undefined;
  const stores = options.stores ?? (await createTestStores());
  const adminKey = `test-admin-${randomBytes(24).toString("hex")}`;
  // Races on one token (dozens of registrations at once) are tested; the per-token limit is tested on its own.
  // Agents in tests listen on loopback, which the address policy refuses unless allowed (address-policy.test.ts proves the default).
  const config: Config = {
    ...defaultConfig,
    adminKey,
    dataDir: "",
    logLevel: "silent",
    rateLimitPerToken: 1000,
    probeAllowCidrs: ["127.0.0.0/8"],
    secretKey: TEST_SECRET_KEY,
    ...options.config,
  };
  const runtime = await buildRuntime({
    config,
    logger: options.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? "silent", serializers: logSerializers }),
    stores,
    migrationsFolder: MIGRATIONS,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  if (options.startLoops) await runtime.start();
  return {
    runtime,
    stores,
    http: new HttpClient(runtime.app),
    adminKey,
    config,
    async close() {
      await runtime.stop();
      if (ownsStores) await stores.dispose();
    },
  };
}
