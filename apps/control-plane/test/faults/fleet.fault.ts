import { afterEach, describe, expect, inject, it } from "vitest";
import {
  type AgentProcess,
  ControlPlane,
  expectNoneMarkedOffline,
  lastBeats,
  Processes,
  scenario,
  sleep,
  startFleet,
  waitFor,
  WINDOW_S,
} from "./harness.js";

const services = inject("faults");
const processes = new Processes();
afterEach(() => processes.killAll());

const FLEET = 6;

describe("the fleet across control-plane outages", () => {
  it("marks no host offline after every control plane was stopped for three windows", async () => {
    const downMs = 3 * WINDOW_S * 1000;
    await scenario(
      services,
      "all control planes stopped",
      `SIGTERM both control planes (PostgreSQL + Redis) under ${FLEET} agents, ${downMs / 1000} s down (3 windows), start both again`,
      async (observe) => {
        const first = await ControlPlane.options(services, "postgres", "two-planes");
        const second = await ControlPlane.sibling(first, "second-plane");
        let planes = [await ControlPlane.start(processes, first), await ControlPlane.start(processes, second)];
        const agents = await startFleet(processes, planes, FLEET, first.dataDir);
        const hostIds = agents.map((agent) => agent.hostId);

        await Promise.all(planes.map((plane) => plane.stop("SIGTERM")));
        await sleep(downMs);
        planes = await Promise.all(planes.map((plane) => ControlPlane.start(processes, plane.options)));
        const backAt = Date.now();
        const beatsMs = await waitFor(
          "a heartbeat of every agent after the restart",
          async () => (await lastBeats(planes[0]!, hostIds)).every((at) => at > backAt),
          60_000,
        );
        observe(`all ${FLEET} agents beat again within ${beatsMs} ms of the restart (their retry pauses had grown)`);
        await sleep(WINDOW_S * 1000 + 1000);
        observe(await expectNoneMarkedOffline(planes[0]!, hostIds));
      },
    );
  });

  it("marks a stopped agent offline past its window, and online again when it resumes", async () => {
    await scenario(
      services,
      "agent SIGSTOP / SIGCONT",
      `SIGSTOP one of 3 muster-agent processes (embedded control plane) past the ${WINDOW_S} s window, then SIGCONT`,
      async (observe) => {
        const plane = await ControlPlane.start(processes, await ControlPlane.options(services, "embedded", "sigstop"));
        const [stopped, ...others] = await startFleet(processes, [plane], 3, plane.options.dataDir);
        const status = async (agent: AgentProcess) => (await plane.statuses()).get(agent.hostId);

        stopped!.signal("SIGSTOP");
        const offlineMs = await waitFor("the stopped agent's host offline", async () => (await status(stopped!)) === "offline", 20_000);
        observe(`offline ${offlineMs} ms after SIGSTOP`);
        stopped!.signal("SIGCONT");
        const onlineMs = await waitFor("the resumed agent's host online", async () => (await status(stopped!)) === "online", 20_000);
        observe(`online ${onlineMs} ms after SIGCONT`);

        const audit = async (action: string) => (await plane.audit(action)).filter((entry) => entry.target_id === stopped!.hostId).length;
        expect(await audit("host.offline")).toBe(1);
        expect(await audit("host.online")).toBe(2);
        observe(await expectNoneMarkedOffline(plane, others.map((agent) => agent.hostId)));
      },
    );
  });
});
