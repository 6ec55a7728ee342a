import { afterEach, describe, expect, inject, it } from "vitest";
import { createClient } from "redis";
import { ControlPlane, Processes, scenario } from "./harness.js";

const services = inject("faults");
const processes = new Processes();
afterEach(() => processes.killAll());

const REGISTRATIONS = 40;
const SPECS = { address: "127.0.0.1:9", arch: "x86_64", cpu_cores: 2, memory_mb: 1024, disk_gb: 10 };

/**
 * POST /v1/hosts/register from the machine named `hostname`: the status, or
 * null when the connection died without an answer. The checks after the crash
 * ask from another machine: the same machine's retry gets its credentials back.
 */
async function register(plane: ControlPlane, token: string, hostname = "first-machine"): Promise<number | null> {
  try {
    const res = await fetch(`${plane.url}/v1/hosts/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, ...SPECS, hostname }),
      signal: AbortSignal.timeout(20_000),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return null;
  }
}

/** How many registration tokens Redis still holds under the control plane's key prefix. */
async function liveTokensInRedis(kvPrefix: string): Promise<number> {
  const redis = createClient({ url: services.redisUrl });
  redis.on("error", () => {});
  await redis.connect();
  try {
    return (await redis.keys(`${kvPrefix}regtoken:*`)).length;
  } finally {
    redis.destroy();
  }
}

describe("a control plane killed in the middle of registrations", () => {
  it.each(["postgres", "embedded"] as const)(
    "leaves every token either unused (it registers once) or used by exactly one registered host (%s)",
    async (mode) => {
      await scenario(
        services,
        `kill -9 mid-registration (${mode})`,
        `SIGKILL the control plane as the first of ${REGISTRATIONS} concurrent registrations (one token each) is answered; start it again on the same stores`,
        async (observe) => {
          const options = await ControlPlane.options(services, mode, `crash-${mode}`);
          const plane = await ControlPlane.start(processes, options);
          const hosts = [];
          for (let i = 0; i < REGISTRATIONS; i++) hosts.push(await plane.createHost());

          const inFlight = hosts.map((host) => register(plane, host.token));
          await Promise.race(inFlight);
          await plane.stop("SIGKILL");
          const before = await Promise.all(inFlight);
          const answered = before.filter((status) => status === 201).length;
          observe(`${answered} answered 201 before the kill, ${before.filter((status) => status === null).length} cut off`);
          if (mode === "postgres") {
            const left = await liveTokensInRedis(options.kvPrefix);
            observe(`${REGISTRATIONS - answered - left} tokens taken from Redis but not answered`);
          }

          const startedAt = Date.now();
          const restarted = await ControlPlane.start(processes, options);
          observe(`restarted in ${Date.now() - startedAt} ms`);

          let used = 0;
          let unused = 0;
          for (const [i, host] of hosts.entries()) {
            const view = await restarted.api<{ registered_at: string | null }>("GET", `/v1/hosts/${host.id}`);
            const registered = view.body.registered_at !== null;
            // A registration the client saw succeed must have stuck.
            if (before[i] === 201) expect(registered).toBe(true);
            const again = await register(restarted, host.token, "another-machine");
            if (registered) {
              expect(again, `host ${host.id} is registered, yet its token still works`).toBe(401);
              used++;
            } else {
              expect(again, `host ${host.id} is not registered, yet its token was burnt`).toBe(201);
              expect(await register(restarted, host.token, "a-third-machine")).toBe(401);
              unused++;
            }
          }
          observe(`${used} tokens used by exactly one registered host, ${unused} unused (each registered once after), 0 burnt`);
        },
      );
    },
  );
});
