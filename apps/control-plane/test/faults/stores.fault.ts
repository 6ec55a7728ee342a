import { afterEach, describe, expect, inject, it } from "vitest";
import {
  ControlPlane,
  expectNoneMarkedOffline,
  lastBeats,
  Processes,
  scenario,
  sleep,
  startFleet,
  StoreFaults,
  waitFor,
  WINDOW_S,
} from "./harness.js";

const services = inject("faults");
const processes = new Processes();
const stores = new StoreFaults(services);
afterEach(async () => {
  await processes.killAll();
  await stores.restore();
});

const FLEET = 5;
/** Each store stays down longer than the offline window: long enough to mark every host offline if the control plane blamed them. */
const DOWN_MS = (WINDOW_S + 2) * 1000;

/**
 * Takes a store away under a fleet's heartbeats, brings it back on the same
 * port and folder, and checks the control plane: /readyz names the store while
 * it is down and is 200 after; heartbeats are accepted again without a
 * restart; no host is ever marked offline.
 */
async function storeOutage(
  observe: (observation: string) => void,
  store: "kv" | "database",
  takeDown: () => Promise<void>,
  bringBack: () => void,
  duringOutage: (plane: ControlPlane, hostIds: string[], downAt: number) => Promise<void>,
) {
  const plane = await ControlPlane.start(processes, await ControlPlane.options(services, "postgres", `${store}-outage`));
  const agents = await startFleet(processes, [plane], FLEET, plane.options.dataDir);
  const hostIds = agents.map((agent) => agent.hostId);

  await takeDown();
  const downAt = Date.now();
  await waitFor(`/readyz to name the ${store}`, async () => {
    const ready = await plane.readyz();
    return ready.status === 503 && ready.message.includes(store);
  });
  observe(`readyz 503 "${(await plane.readyz()).message}"`);
  await duringOutage(plane, hostIds, downAt);
  await sleep(DOWN_MS - (Date.now() - downAt));

  bringBack();
  const backAt = Date.now();
  const readyMs = await waitFor("/readyz 200 again", async () => (await plane.readyz()).status === 200);
  observe(`readyz 200 ${readyMs} ms after the restart`);
  const beatsMs = await waitFor("a heartbeat of every host after the store came back", async () =>
    (await lastBeats(plane, hostIds)).every((at) => at > backAt),
  );
  observe(`all ${FLEET} hosts' beats accepted within ${beatsMs} ms after, same process`);
  // Past a full window after the store came back: a sweep that blamed the hosts would have marked them by now.
  await sleep(WINDOW_S * 1000 + 1000);
  observe(await expectNoneMarkedOffline(plane, hostIds));
  expect(plane.child.exitCode).toBeNull();
}

describe("store outages under heartbeat load (PostgreSQL + Redis mode)", () => {
  it("survives Redis killed (SIGKILL) and restarted empty", async () => {
    await scenario(
      services,
      "Redis killed",
      `SIGKILL redis-server under ${FLEET} agents' beats, ${DOWN_MS / 1000} s down (window ${WINDOW_S} s), restarted empty on its port`,
      (observe) =>
        storeOutage(
          observe,
          "kv",
          () => stores.killRedis(),
          () => stores.startRedis(),
          async (plane, hostIds, downAt) => {
            const reads = await plane.api("GET", "/v1/hosts?limit=500");
            expect(reads.status).toBe(200);
            // Known hosts keep beating: their times reach the database, which the operator API shows meanwhile.
            await waitFor("a beat of every host while Redis is down", async () =>
              (await lastBeats(plane, hostIds)).every((at) => at > downAt + 1000),
            );
            observe("operator reads 200 and every host's beats accepted while down");
          },
        ),
    );
  });

  it("survives PostgreSQL stopped (immediate) and started again", async () => {
    await scenario(
      services,
      "PostgreSQL restarted",
      `pg_ctl stop -m immediate under ${FLEET} agents' beats, ${DOWN_MS / 1000} s down (window ${WINDOW_S} s), pg_ctl start`,
      (observe) =>
        storeOutage(
          observe,
          "database",
          async () => stores.stopPostgres("immediate"),
          () => stores.startPostgres(),
          async (plane) => {
            const reads = await plane.api<{ error: { code: string; message: string } }>("GET", "/v1/hosts?limit=500");
            expect(reads.status).toBe(503);
            expect(reads.body.error.code).toBe("unavailable");
            expect(reads.body.error.message).not.toMatch(/select|ECONN|at .*\.js/i);
            observe("operator reads 503 unavailable (envelope, no internals) while down");
          },
        ),
    );
  });
});
