import { BUILTIN_COMMANDS, type CommandMessage } from "@muster/contract";
import { MusterError } from "../errors.js";
import type { AgentLogger, CommandHandler } from "./types.js";

/** Command IDs remembered, so a command sent again after a lost acknowledgement does not run twice. */
const SEEN_MAX = 1_000;

export type CommandOutcome = { ok: true; result?: unknown } | { ok: false; error: string };

/** Where a command's acknowledgement and result go: the channel it came on, and whichever channel is open when it ends. */
export interface CommandReplies {
  ack(id: string): void;
  /** Sends the result on the channel open now; false when none is. */
  result(id: string, outcome: CommandOutcome): boolean;
}

/**
 * Runs the commands that arrive on the agent channel: the built-ins the agent
 * gives it, and the handlers an embedding daemon registers. Each is
 * acknowledged at once and run once; a result that finds no open channel waits
 * for the next one.
 */
export class CommandRunner {
  private readonly handlers = new Map<string, CommandHandler>();
  private readonly seen = new Set<string>();
  private unsent: { id: string; outcome: CommandOutcome }[] = [];

  constructor(
    private readonly builtins: Record<(typeof BUILTIN_COMMANDS)[number], () => Promise<unknown>>,
    private readonly log: AgentLogger,
  ) {}

  on(type: string, handler: CommandHandler): () => void {
    if ((BUILTIN_COMMANDS as readonly string[]).includes(type)) throw new TypeError(`HostAgent.onCommand: '${type}' is built in`);
    this.handlers.set(type, handler);
    return () => {
      if (this.handlers.get(type) === handler) this.handlers.delete(type);
    };
  }

  async run(command: CommandMessage, replies: CommandReplies, hostId: string | null): Promise<void> {
    replies.ack(command.id);
    if (this.seen.has(command.id)) return;
    if (this.seen.size >= SEEN_MAX) this.seen.delete(this.seen.values().next().value!);
    this.seen.add(command.id);
    this.log.info({ host_id: hostId, command_id: command.id, type: command.command_type }, "command received");
    let outcome: CommandOutcome;
    try {
      const result = await this.execute(command);
      outcome = { ok: true, ...(result === undefined ? {} : { result }) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.log.warn({ host_id: hostId, command_id: command.id, err: message }, "command failed");
      outcome = { ok: false, error: message };
    }
    if (!replies.result(command.id, outcome) && this.unsent.length < SEEN_MAX) this.unsent.push({ id: command.id, outcome });
  }

  /** Results that found no channel open; called when one opens. */
  takeUnsent(): { id: string; outcome: CommandOutcome }[] {
    return this.unsent.splice(0);
  }

  private async execute(command: CommandMessage): Promise<unknown> {
    const type = command.command_type;
    if ((BUILTIN_COMMANDS as readonly string[]).includes(type)) return this.builtins[type as (typeof BUILTIN_COMMANDS)[number]]();
    const handler = this.handlers.get(type);
    if (!handler) throw new MusterError(`this agent has no handler for command type '${type}'`);
    return handler(command.payload ?? {}, { id: command.id, type, expiresAt: new Date(command.expires_at) });
  }
}
