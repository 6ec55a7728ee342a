import { IdSchema } from "@muster/contract";
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { MusterError } from "../errors.js";
import type { AgentClock } from "./clock.js";
import type { AgentLogger } from "./types.js";

export type CommandOutcome = { ok: true; result?: unknown } | { ok: false; error: string };

/**
 * What the agent remembers of one command until it expires:
 * - `running`: received and started, no outcome yet;
 * - `finished`: its outcome, not yet acknowledged by the control plane;
 * - `reported`: the control plane holds its outcome (only the ID is kept).
 */
export const RememberedCommand = Type.Union([
  Type.Object({ id: IdSchema("command"), expires_at: Type.String(), state: Type.Literal("running") }),
  Type.Object({
    id: IdSchema("command"),
    expires_at: Type.String(),
    state: Type.Literal("finished"),
    outcome: Type.Union([
      Type.Object({ ok: Type.Literal(true), result: Type.Optional(Type.Unknown()) }),
      Type.Object({ ok: Type.Literal(false), error: Type.String() }),
    ]),
  }),
  Type.Object({ id: IdSchema("command"), expires_at: Type.String(), state: Type.Literal("reported") }),
]);
export type RememberedCommand = Static<typeof RememberedCommand>;

export const CommandOutcomesDocument = Type.Object({ version: Type.Literal(1), commands: Type.Array(RememberedCommand) });
export type CommandOutcomesDocument = Static<typeof CommandOutcomesDocument>;

/** Where an agent keeps its command outcomes between starts: `FileCredentialStore` puts a file beside the credentials. */
export interface CommandOutcomeStore {
  /** A human name for messages, e.g. the file's path. */
  readonly description: string;
  /** What was saved, or null if nothing was. Throws when it cannot be read or makes no sense. */
  load(): Promise<CommandOutcomesDocument | null>;
  /** Replaces what was saved all at once. */
  save(document: CommandOutcomesDocument): Promise<void>;
}

/** Outcomes in memory only: a restarted agent forgets them. For daemons that keep no state folder, and for tests. */
export class MemoryCommandOutcomeStore implements CommandOutcomeStore {
  readonly description = "memory";
  document: CommandOutcomesDocument | null = null;
  async load() {
    return this.document && structuredClone(this.document);
  }
  async save(document: CommandOutcomesDocument) {
    this.document = structuredClone(document);
  }
}

/** Checks a parsed outcomes document; the error names the first field that is wrong. */
export function parseCommandOutcomes(document: unknown, source: string): CommandOutcomesDocument {
  if (Value.Check(CommandOutcomesDocument, document)) return document;
  const first = Value.Errors(CommandOutcomesDocument, document).First();
  throw new MusterError(`${source} is not a command outcomes file (${first ? `${first.path || "/"}: ${first.message}` : "unexpected shape"})`);
}

/** How many commands are remembered at most; beyond, the oldest reported ones are forgotten first. */
export const OUTCOMES_MAX = 10_000;
/**
 * How long past its `expires_at` a command is remembered: the control plane
 * sends nothing after the deadline by its own clock, and this covers a host
 * clock that runs ahead of it (the agent warns from 10 s on).
 */
export const OUTCOME_RETENTION_AFTER_EXPIRY_MS = 5 * 60_000;

export const RESTARTED_MID_COMMAND =
  "the agent restarted while this command was running, so how it ended is unknown; it was not run again: check the host, then send it again if needed";

/**
 * The agent's memory of commands, in memory and in its store: so that a
 * command sent again is never run twice, and a result is never lost before the
 * control plane has acknowledged it. Writes are coalesced: changes made in
 * the same turn of the event loop go out in one write; `start` waits for its
 * write, so a command runs only once it is on record.
 */
export class CommandMemory {
  private readonly entries = new Map<string, RememberedCommand>();
  /** When each unacknowledged result was last sent (this run only). */
  private readonly sentAt = new Map<string, number>();
  private write: Promise<void> | null = null;

  constructor(
    private readonly store: CommandOutcomeStore,
    private readonly clock: AgentClock,
    private readonly log: AgentLogger,
  ) {}

  /**
   * Reads what an earlier run left. A command that was running then ended
   * with that run: it is reported failed, never run again. A store that cannot
   * be read is logged and starts empty, for the agent's heartbeat matters more.
   */
  async load(): Promise<void> {
    let document: CommandOutcomesDocument | null;
    try {
      document = await this.store.load();
    } catch (error) {
      this.log.error({ outcomes: this.store.description, err: (error as Error).message }, "cannot read the command outcomes; starting without them");
      return;
    }
    let interrupted = 0;
    for (const entry of document?.commands ?? []) {
      if (entry.state === "running") {
        interrupted++;
        this.entries.set(entry.id, { id: entry.id, expires_at: entry.expires_at, state: "finished", outcome: { ok: false, error: RESTARTED_MID_COMMAND } });
      } else {
        this.entries.set(entry.id, entry);
      }
      this.sentAt.set(entry.id, this.clock.now());
    }
    if (interrupted > 0) {
      this.log.warn({ outcomes: this.store.description, commands: interrupted }, "commands were running when the agent stopped; reporting them failed");
    }
  }

  get(id: string): RememberedCommand | undefined {
    return this.entries.get(id);
  }

  /** Records a command as running, on disk before it resolves; throws when it cannot be recorded (then it must not run). */
  async start(id: string, expiresAt: string): Promise<void> {
    this.forgetExpired();
    if (this.entries.size >= OUTCOMES_MAX) {
      for (const entry of this.entries.values()) {
        if (entry.state !== "reported") continue;
        this.entries.delete(entry.id);
        if (this.entries.size < OUTCOMES_MAX) break;
      }
    }
    if (this.entries.size >= OUTCOMES_MAX) {
      throw new MusterError(`the agent already holds ${OUTCOMES_MAX} commands that are running or not yet reported`);
    }
    this.entries.set(id, { id, expires_at: expiresAt, state: "running" });
    try {
      await this.persist();
    } catch (error) {
      this.entries.delete(id);
      throw new MusterError(`the agent cannot record it in ${this.store.description} (${(error as Error).message})`, { cause: error });
    }
  }

  /** Keeps the outcome of a started command until the control plane acknowledges it; resolves once it is on record (a failed write is logged). */
  async finish(id: string, outcome: CommandOutcome): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.set(id, { id, expires_at: entry.expires_at, state: "finished", outcome });
    // Its wait for an acknowledgement starts now, not once the write is done.
    this.sentAt.set(id, this.clock.now());
    await this.persist().catch((error: unknown) => {
      this.log.error({ command_id: id, outcomes: this.store.description, err: (error as Error).message }, "cannot record a command's outcome; it is kept in memory only");
    });
  }

  /** The control plane holds the outcome: stop sending it. */
  reported(id: string): void {
    const entry = this.entries.get(id);
    this.sentAt.delete(id);
    if (entry?.state !== "finished") return;
    this.entries.set(id, { id, expires_at: entry.expires_at, state: "reported" });
    void this.persist().catch((error: unknown) => this.log.warn({ outcomes: this.store.description, err: (error as Error).message }, "cannot record the outcomes"));
  }

  markSent(id: string): void {
    this.sentAt.set(id, this.clock.now());
  }

  /** Outcomes the control plane has not acknowledged, with when each was last sent. */
  unacknowledged(): { id: string; outcome: CommandOutcome; sentAt: number }[] {
    const waiting = [];
    for (const entry of this.entries.values()) {
      if (entry.state === "finished") waiting.push({ id: entry.id, outcome: entry.outcome, sentAt: this.sentAt.get(entry.id) ?? 0 });
    }
    return waiting;
  }

  /** Forgets commands well past their deadline, except those still running here (their outcome is still to be reported). */
  private forgetExpired(): void {
    const before = this.clock.now() - OUTCOME_RETENTION_AFTER_EXPIRY_MS;
    for (const [id, entry] of this.entries) {
      if (entry.state !== "running" && Date.parse(entry.expires_at) < before) {
        this.entries.delete(id);
        this.sentAt.delete(id);
      }
    }
  }

  /** One write for every change made before it starts (the changes of this turn of the event loop share it). */
  private persist(): Promise<void> {
    this.write ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.write = null;
      this.forgetExpired();
      return this.store.save({ version: 1, commands: [...this.entries.values()] });
    });
    return this.write;
  }
}
