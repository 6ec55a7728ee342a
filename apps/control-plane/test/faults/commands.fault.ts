import { readFileSync } from "node:fs";
import { afterEach, describe, expect, inject, it } from "vitest";
import { MusterClient, type Command } from "@muster/sdk";
import { TcpBalancer } from "@muster/testkit";
import { AgentProcess, ControlPlane, expectNoneMarkedOffline, Processes, scenario, sleep, waitFor } from "./harness.js";

const services = inject("faults");
const processes = new Processes();
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await processes.killAll();
  for (const close of closers.splice(0)) await close();
});

const AGENTS = 4;
/** One `ping` every this many ms, to the agents in turn. */
const EVERY_MS = 100;
/** How long each phase lasts: calm, one plane dead, both back. */
const PHASE_MS = 8_000;
/** Commands sent within this long after a kill make up the failover phase. */
const FAILOVER_MS = 5_000;
const TIMEOUT_S = 60;

interface AgentLine {
  time: string;
  msg: string;
  command_id?: string;
}

const linesOf = (agent: AgentProcess): AgentLine[] =>
  readFileSync(agent.logFile, "utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as AgentLine);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN;
}

const figures = (ms: number[]) => `p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms over ${ms.length}`;

describe("commands across control-plane deaths", () => {
  it("ends every accepted command succeeded and runs none twice, with each of two control planes behind a load balancer killed -9", async () => {
    await scenario(
      services,
      "kill -9 under a command stream",
      `a ping every ${EVERY_MS} ms to ${AGENTS} muster-agent processes, through a TCP load balancer in front of two control planes (PostgreSQL + Redis); ` +
        `SIGKILL the first, start it again, SIGKILL the second, start it again, ${PHASE_MS / 1000} s apart`,
      async (observe) => {
        const first = await ControlPlane.options(services, "postgres", "commands");
        const second = await ControlPlane.sibling(first, "commands-second");
        const planes = [await ControlPlane.start(processes, first), await ControlPlane.start(processes, second)];
        const balancer = await TcpBalancer.start([first.port, second.port]);
        closers.push(() => balancer.close());
        const agents: AgentProcess[] = [];
        for (let i = 0; i < AGENTS; i++) agents.push(await AgentProcess.start(processes, planes[0]!, first.dataDir, { url: balancer.url, logLevel: "debug" }));
        const hostIds = agents.map((agent) => agent.hostId);
        await waitFor("every agent's channel open", async () => agents.every((agent) => linesOf(agent).some((line) => line.msg.startsWith("agent channel open"))));

        // Every answer and every connection failure the client met, under its own retries.
        const seen = { resets: 0, statuses: new Map<number, number>() };
        const counted: typeof fetch = async (input, init) => {
          try {
            const response = await fetch(input, init);
            seen.statuses.set(response.status, (seen.statuses.get(response.status) ?? 0) + 1);
            return response;
          } catch (error) {
            seen.resets++;
            throw error;
          }
        };
        const client = new MusterClient({ baseUrl: balancer.url, apiKey: first.adminKey, fetch: counted, timeoutMs: 10_000 });
        const accepted: Command[] = [];
        const refused: string[] = [];
        const inFlight = new Set<Promise<void>>();
        let streaming = true;
        const stream = (async () => {
          for (let i = 0; streaming; i++) {
            const hostId = hostIds[i % AGENTS]!;
            const send = client.hosts.commands.send(hostId, { type: "ping", timeout_s: TIMEOUT_S }).then(
              (command) => void accepted.push(command),
              (error: Error) => void refused.push(error.message),
            );
            inFlight.add(send);
            void send.finally(() => inFlight.delete(send));
            await sleep(EVERY_MS);
          }
        })();

        await sleep(PHASE_MS);
        const kills: number[] = [];
        for (const index of [0, 1]) {
          kills.push(Date.now());
          await planes[index]!.stop("SIGKILL");
          await sleep(PHASE_MS);
          planes[index] = await ControlPlane.start(processes, planes[index]!.options);
          await sleep(PHASE_MS);
        }
        streaming = false;
        await stream;
        await Promise.all(inFlight);
        expect(refused, "sends the client gave up on").toEqual([]);
        const statuses = [...seen.statuses].map(([status, count]) => `${count}×${status}`).join(", ");
        observe(`${accepted.length} commands accepted, none refused (the client saw ${statuses} and ${seen.resets} lost connections, retried with the same Idempotency-Key)`);

        const direct = new MusterClient({ baseUrl: planes[0]!.url, apiKey: first.adminKey });
        const listAll = async () => (await Promise.all(hostIds.map((id) => direct.hosts.commands.list(id, { limit: 500 }).toArray()))).flat();
        let stored: Command[] = [];
        await waitFor(
          "every command to end",
          async () => {
            stored = await listAll();
            return stored.every((command) => command.status !== "queued" && command.status !== "delivered");
          },
          (TIMEOUT_S + 10) * 1000,
        );
        expect(stored.map((command) => command.id).sort(), "commands stored: one per accepted send").toEqual(accepted.map((command) => command.id).sort());
        const notSucceeded = stored.filter((command) => command.status !== "succeeded");
        expect(notSucceeded.map((command) => `${command.id} ${command.status} ${command.error ?? ""}`)).toEqual([]);

        const lines = agents.flatMap(linesOf);
        const runs = new Map<string, number>();
        for (const line of lines) if (line.msg === "command received") runs.set(line.command_id!, (runs.get(line.command_id!) ?? 0) + 1);
        const twice = [...runs].filter(([, count]) => count > 1);
        expect(twice, "commands run more than once").toEqual([]);
        expect(stored.filter((command) => runs.get(command.id) !== 1).map((command) => command.id), "commands that never ran").toEqual([]);
        const repeats = lines.filter((line) => line.msg.startsWith("command received again")).length;
        const overHttp = lines.filter((line) => line.msg === "command result sent over HTTP").length;
        observe(`all ${stored.length} succeeded, each run exactly once; ${repeats} copies sent again after a kill were answered from the agents' memory; ${overHttp} results went over HTTP`);

        const latency = (command: Command) => Date.parse(command.completed_at!) - Date.parse(command.created_at);
        const inFailover = (command: Command) => kills.some((kill) => Date.parse(command.created_at) >= kill && Date.parse(command.created_at) < kill + FAILOVER_MS);
        const calm = stored.filter((command) => !inFailover(command)).map(latency);
        const failover = stored.filter(inFailover).map(latency);
        observe(`sent to completed: calm ${figures(calm)}; failover (${FAILOVER_MS / 1000} s after each kill) ${figures(failover)}`);

        const backAfter = kills.map((kill) => {
          const reopened = agents.map((agent) => {
            const afterKill = linesOf(agent).filter((line) => Date.parse(line.time) >= kill);
            const dropped = afterKill.find((line) => line.msg.startsWith("agent channel dropped"));
            if (!dropped || Date.parse(dropped.time) > kill + FAILOVER_MS) return 0;
            const open = afterKill.find((line) => line.msg.startsWith("agent channel open") && line.time >= dropped.time);
            return open ? Date.parse(open.time) - kill : Infinity;
          });
          return Math.max(...reopened);
        });
        expect(backAfter.every((ms) => Number.isFinite(ms))).toBe(true);
        observe(`channels back on the surviving plane within ${backAfter.map((ms) => `${ms} ms`).join(" and ")} of each kill`);
        observe(await expectNoneMarkedOffline(planes[0]!, hostIds));
      },
    );
  }, 300_000);
});
