import * as nodeFs from "node:fs";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CommandMessage } from "@muster/contract";
import { CommandRunner, RESULT_HTTP_AFTER_MS, type ChannelSend } from "../src/agent/commands.js";
import { CommandMemory, type CommandOutcome } from "../src/agent/outcomes.js";
import {
  FileCredentialStore,
  MemoryCommandOutcomeStore,
  MusterApiError,
  MusterConnectionError,
  OUTCOME_RETENTION_AFTER_EXPIRY_MS,
  OUTCOMES_MAX,
  RESTARTED_MID_COMMAND,
  type AgentLogger,
  type CommandOutcomeStore,
  type CommandOutcomesDocument,
} from "../src/index.js";
import { FakeClock } from "./agent-fakes.js";

/**
 * The agent's side of "exactly one outcome": its memory of commands (in
 * memory and in a file beside the credentials) and the runner that consults
 * it, driven with a fake clock and a fake channel, no network.
 */
const dir = mkdtempSync(join(tmpdir(), "muster-agent-commands-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const logs: { message: string; fields: object }[] = [];
const log: AgentLogger = Object.fromEntries(
  (["debug", "info", "warn", "error"] as const).map((level) => [level, (fields: object, message: string) => void logs.push({ message, fields })]),
) as unknown as AgentLogger;

let serial = 0;
const commandId = () => `cmd-${String(++serial).padStart(26, "0")}`;

function command(id: string, clock: FakeClock, type = "deploy", ttlMs = 60_000): CommandMessage {
  return { type: "command", id, command_type: type, payload: { n: 1 }, expires_at: new Date(clock.now() + ttlMs).toISOString() };
}

/** A runner on a fake channel: what it sent, what it posted over HTTP, and how many times each command ran. */
function runner(options: { store?: CommandOutcomeStore; channel?: () => ChannelSend; post?: (id: string) => Promise<void>; clock?: FakeClock } = {}) {
  const clock = options.clock ?? new FakeClock();
  const store = options.store ?? new MemoryCommandOutcomeStore();
  const memory = new CommandMemory(store, clock, log);
  const sent: { id: string; outcome: CommandOutcome }[] = [];
  const posted: string[] = [];
  const acks: string[] = [];
  const runs = new Map<string, number>();
  const gates = new Map<string, Promise<void>>();
  const commands = new CommandRunner({
    builtins: { ping: async () => ({ pong: true }), refresh_credentials: async () => ({}) },
    memory,
    log,
    clock,
    random: () => 0,
    hostId: () => "host-test",
    sendResult: (id, outcome) => {
      const how = options.channel?.() ?? "acknowledged";
      if (how !== "none") sent.push({ id, outcome });
      return how;
    },
    postResult: async (id) => {
      await options.post?.(id);
      posted.push(id);
    },
  });
  commands.on("deploy", async (_payload, { id }) => {
    runs.set(id, (runs.get(id) ?? 0) + 1);
    await gates.get(id);
    return { deployed: id };
  });
  return { clock, store, memory, commands, sent, posted, acks, runs, gates, ack: (id: string) => void acks.push(id) };
}

describe("running a command once", () => {
  it("acknowledges every copy, runs the first, does nothing more for a repeat while it runs, and answers a later repeat with the stored result", async () => {
    const r = runner();
    const id = commandId();
    let release!: () => void;
    r.gates.set(id, new Promise((resolve) => (release = resolve)));
    const first = r.commands.run(command(id, r.clock), r.ack);
    await new Promise((resolve) => setImmediate(resolve));
    await r.commands.run(command(id, r.clock), r.ack);
    expect(r.sent).toEqual([]);
    release();
    await first;
    await r.commands.run(command(id, r.clock), r.ack);
    expect(r.acks).toEqual([id, id, id]);
    expect(r.runs.get(id)).toBe(1);
    expect(r.sent).toEqual([
      { id, outcome: { ok: true, result: { deployed: id } } },
      { id, outcome: { ok: true, result: { deployed: id } } },
    ]);
  });

  it("does not run a command it cannot record, and says why", async () => {
    const failing: CommandOutcomeStore = {
      description: "/full/disk/outcomes.json",
      load: async () => null,
      save: async () => {
        throw new Error("no space left on the device");
      },
    };
    const r = runner({ store: failing });
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    expect(r.runs.get(id)).toBeUndefined();
    expect(r.sent).toEqual([{ id, outcome: { ok: false, error: expect.stringMatching(/^not run: .*no space left on the device/) } }]);
  });
});

describe("sending results until the control plane has them", () => {
  it("sends an unacknowledged result on every channel that opens, and stops once it is acknowledged", async () => {
    let channel: ChannelSend = "none";
    const r = runner({ channel: () => channel });
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    expect(r.sent).toEqual([]);
    channel = "acknowledged";
    r.commands.channelOpened();
    r.commands.channelOpened();
    expect(r.sent.map((s) => s.id)).toEqual([id, id]);
    r.commands.acknowledged(id);
    r.commands.channelOpened();
    expect(r.sent).toHaveLength(2);
  });

  it("sends each result once to a control plane older than protocol 3, which never acknowledges", async () => {
    const r = runner({ channel: () => "sent" });
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    r.commands.channelOpened();
    expect(r.sent.map((s) => s.id)).toEqual([id]);
    expect(r.memory.get(id)?.state).toBe("reported");
  });

  it("posts a result over HTTP once it has waited 5 s unacknowledged, retries what may pass later, and drops what never will", async () => {
    const answers: (() => Error | null)[] = [
      () => new MusterConnectionError("cannot reach the control plane", false),
      () => new MusterApiError(503, "unavailable", "database unreachable", null, 2),
      () => null,
    ];
    const r = runner({
      channel: () => "none",
      post: async () => {
        const error = answers.shift()!();
        if (error) throw error;
      },
    });
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    expect(await r.clock.next()).toBe(RESULT_HTTP_AFTER_MS);
    expect(r.posted).toEqual([]);
    // Backoff after the network failure (1 s at its low end), then the 503's Retry-After (2 s).
    expect(await r.clock.next()).toBe(1_000);
    expect(await r.clock.next(() => r.memory.get(id)?.state === "reported")).toBe(2_000);
    expect(r.posted).toEqual([id]);
    expect(r.memory.get(id)?.state).toBe("reported");

    for (const status of [409, 404]) {
      const refused = runner({ channel: () => "none", post: async () => Promise.reject(new MusterApiError(status, "conflict", "settled", null, null)) });
      const other = commandId();
      await refused.commands.run(command(other, refused.clock), refused.ack);
      await refused.clock.next(() => refused.memory.get(other)?.state === "reported");
      expect(refused.memory.get(other)?.state).toBe("reported");
      expect(refused.clock.pendingTimers).toBe(0);
    }
  });

  it("gives a result its 5 s from the moment it is known, even while it is still being written", async () => {
    const inner = new MemoryCommandOutcomeStore();
    let slow = false;
    let release = () => {};
    const store: CommandOutcomeStore = {
      description: "slow disk",
      load: () => inner.load(),
      save: async (document) => {
        if (slow) await new Promise<void>((resolve) => (release = resolve));
        await inner.save(document);
      },
    };
    const r = runner({ store, channel: () => "none" });
    const early = commandId();
    await r.commands.run(command(early, r.clock), r.ack);
    r.clock.jump(4_000);
    const late = commandId();
    let finish = () => {};
    r.gates.set(late, new Promise<void>((resolve) => (finish = resolve)));
    const running = r.commands.run(command(late, r.clock), r.ack);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    slow = true;
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    await r.clock.next(() => r.posted.length > 0);
    expect(r.posted).toEqual([early]);
    release();
    await running;
  });
});

describe("the memory across restarts", () => {
  it("reports a command that was running when the agent stopped as failed, and never runs it again", async () => {
    const store = new MemoryCommandOutcomeStore();
    const before = runner({ store });
    const id = commandId();
    before.gates.set(id, new Promise(() => {}));
    void before.commands.run(command(id, before.clock), before.ack);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.document?.commands).toEqual([{ id, expires_at: expect.any(String), state: "running" }]);

    const after = runner({ store, clock: before.clock });
    await after.commands.load();
    after.commands.channelOpened();
    expect(after.sent).toEqual([{ id, outcome: { ok: false, error: RESTARTED_MID_COMMAND } }]);
    await after.commands.run(command(id, after.clock), after.ack);
    expect(after.runs.get(id)).toBeUndefined();
    expect(after.sent).toHaveLength(2);
  });

  it("keeps outcomes beside the credentials, mode 0600, replaced atomically (a failed write leaves the last good file)", async () => {
    const credentials = new FileCredentialStore(join(dir, "credentials.json"));
    const store = credentials.commandOutcomes();
    expect(store.path).toBe(join(dir, "credentials.commands.json"));
    const r = runner({ store });
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    const saved = readFileSync(store.path, "utf8");
    expect(JSON.parse(saved)).toEqual({ version: 1, commands: [{ id, expires_at: expect.any(String), state: "finished", outcome: { ok: true, result: { deployed: id } } }] });

    const brokenFs = { ...nodeFs, renameSync: () => { throw Object.assign(new Error("EIO"), { code: "EIO" }); } };
    const broken = new FileCredentialStore(join(dir, "credentials.json"), { fs: brokenFs }).commandOutcomes();
    const later = runner({ store: broken, clock: r.clock });
    await later.commands.load();
    await later.commands.run(command(commandId(), r.clock), later.ack);
    expect(readFileSync(store.path, "utf8")).toBe(saved);
    expect(nodeFs.readdirSync(dir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });

  it("starts without an unreadable outcomes file, and says so", async () => {
    const path = join(dir, "corrupt.commands.json");
    writeFileSync(path, "{ not json", { mode: 0o600 });
    const r = runner({ store: new FileCredentialStore(join(dir, "corrupt.json")).commandOutcomes() });
    await r.commands.load();
    expect(logs.some((entry) => entry.message.includes("cannot read the command outcomes") && JSON.stringify(entry.fields).includes(path))).toBe(true);
    const id = commandId();
    await r.commands.run(command(id, r.clock), r.ack);
    expect(r.runs.get(id)).toBe(1);
  });
});

describe("bounds", () => {
  it("forgets a command 5 minutes after its deadline, unless it is still running", async () => {
    const r = runner();
    const done = commandId();
    const running = commandId();
    r.gates.set(running, new Promise(() => {}));
    await r.commands.run(command(done, r.clock, "deploy", 1_000), r.ack);
    void r.commands.run(command(running, r.clock, "deploy", 1_000), r.ack);
    r.clock.jump(1_000 + OUTCOME_RETENTION_AFTER_EXPIRY_MS - 1);
    await r.commands.run(command(commandId(), r.clock), r.ack);
    expect(r.memory.get(done)).toBeDefined();
    r.clock.jump(2);
    await r.commands.run(command(commandId(), r.clock), r.ack);
    expect(r.memory.get(done)).toBeUndefined();
    expect(r.memory.get(running)?.state).toBe("running");
    expect((r.store as MemoryCommandOutcomeStore).document?.commands.map((entry) => entry.id)).not.toContain(done);
  });

  it(`holds at most ${OUTCOMES_MAX} commands: the oldest reported ones make room; unreported ones are never dropped for it`, async () => {
    const clock = new FakeClock();
    const expires = new Date(clock.now() + 60_000).toISOString();
    const full = (state: "reported" | "finished"): CommandOutcomesDocument => ({
      version: 1,
      commands: Array.from({ length: OUTCOMES_MAX }, () =>
        state === "reported" ? { id: commandId(), expires_at: expires, state } : { id: commandId(), expires_at: expires, state, outcome: { ok: true } },
      ),
    });
    const reported = new MemoryCommandOutcomeStore();
    reported.document = full("reported");
    const oldest = reported.document.commands[0]!.id;
    const r = runner({ store: reported, clock });
    await r.commands.load();
    const id = commandId();
    await r.commands.run(command(id, clock), r.ack);
    expect(r.runs.get(id)).toBe(1);
    expect(r.memory.get(oldest)).toBeUndefined();
    expect(reported.document.commands).toHaveLength(OUTCOMES_MAX);

    const unreported = new MemoryCommandOutcomeStore();
    unreported.document = full("finished");
    const u = runner({ store: unreported, clock });
    await u.commands.load();
    const refused = commandId();
    await u.commands.run(command(refused, clock), u.ack);
    expect(u.runs.get(refused)).toBeUndefined();
    expect(u.sent.at(-1)).toEqual({ id: refused, outcome: { ok: false, error: expect.stringContaining(`${OUTCOMES_MAX} commands`) } });
  });

  it("writes once for the commands that start in one turn of the event loop", async () => {
    let saves = 0;
    const inner = new MemoryCommandOutcomeStore();
    const counting: CommandOutcomeStore = { description: "counting", load: () => inner.load(), save: (doc) => (saves++, inner.save(doc)) };
    const r = runner({ store: counting });
    const ids = Array.from({ length: 20 }, commandId);
    for (const id of ids) r.gates.set(id, new Promise(() => {}));
    for (const id of ids) void r.commands.run(command(id, r.clock), r.ack);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(saves).toBe(1);
    expect(inner.document?.commands).toHaveLength(20);
    expect(ids.every((id) => r.runs.get(id) === 1)).toBe(true);
  });
});
