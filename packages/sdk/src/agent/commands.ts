import { BUILTIN_COMMANDS, type CommandMessage } from "@muster/contract";
import { MusterApiError, MusterError } from "../errors.js";
import { retryDelayMs } from "./backoff.js";
import type { AgentClock } from "./clock.js";
import type { CommandMemory, CommandOutcome } from "./outcomes.js";
import type { AgentLogger, CommandHandler } from "./types.js";

/** A result the control plane has not acknowledged this long after it was sent goes over HTTP. */
export const RESULT_HTTP_AFTER_MS = 5_000;

/** How a result left on the channel: `acknowledged` when the control plane will acknowledge it (protocol 3), `sent` when it cannot, `none` when no channel is open. */
export type ChannelSend = "acknowledged" | "sent" | "none";

export interface CommandRunnerOptions {
  builtins: Record<(typeof BUILTIN_COMMANDS)[number], () => Promise<unknown>>;
  memory: CommandMemory;
  log: AgentLogger;
  clock: AgentClock;
  random: () => number;
  /** Sends a result on the channel open now (the one the command came on may have been replaced). */
  sendResult(id: string, outcome: CommandOutcome): ChannelSend;
  /** `POST /v1/hosts/{id}/commands/{command_id}/result`; throws MusterApiError or MusterConnectionError. */
  postResult(id: string, outcome: CommandOutcome): Promise<void>;
  hostId(): string | null;
}

/**
 * Runs the commands that arrive on the agent channel, the built-ins and the
 * embedding daemon's handlers, each at most once: every command is
 * acknowledged at once, recorded in the agent's memory before it runs, and a
 * repeat gets its stored result again (or nothing more while it runs). Results
 * are sent until the control plane acknowledges them: on the channel when it
 * ends, on every channel that opens, and over HTTP when a result has waited
 * RESULT_HTTP_AFTER_MS without an acknowledgement.
 */
export class CommandRunner {
  private readonly handlers = new Map<string, CommandHandler>();
  private courier: unknown = null;
  private posting = false;
  private postFailures = 0;
  private stopped = false;

  constructor(private readonly options: CommandRunnerOptions) {}

  on(type: string, handler: CommandHandler): () => void {
    if ((BUILTIN_COMMANDS as readonly string[]).includes(type)) throw new TypeError(`HostAgent.onCommand: '${type}' is built in`);
    this.handlers.set(type, handler);
    return () => {
      if (this.handlers.get(type) === handler) this.handlers.delete(type);
    };
  }

  /** Reads the memory an earlier run left, and starts sending the results it had not got acknowledged. */
  async load(): Promise<void> {
    await this.options.memory.load();
    this.schedule(RESULT_HTTP_AFTER_MS);
  }

  async run(command: CommandMessage, ack: (id: string) => void): Promise<void> {
    const { memory, log } = this.options;
    const fields = { host_id: this.options.hostId(), command_id: command.id, type: command.command_type };
    ack(command.id);
    const known = memory.get(command.id);
    if (known) {
      log.debug({ ...fields, state: known.state }, "command received again; not run again");
      if (known.state === "finished") this.report(command.id, known.outcome);
      return;
    }
    try {
      await memory.start(command.id, command.expires_at);
    } catch (error) {
      log.error({ ...fields, err: (error as Error).message }, "command not run: it could not be recorded");
      this.options.sendResult(command.id, { ok: false, error: `not run: ${(error as Error).message}` });
      return;
    }
    log.info(fields, "command received");
    let outcome: CommandOutcome;
    try {
      const result = await this.execute(command);
      outcome = { ok: true, ...(result === undefined ? {} : { result }) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.warn({ ...fields, err: message }, "command failed");
      outcome = { ok: false, error: message };
    }
    await memory.finish(command.id, outcome);
    this.report(command.id, outcome);
  }

  /** A channel opened: every result still unacknowledged goes on it. */
  channelOpened(): void {
    for (const { id, outcome } of this.options.memory.unacknowledged()) this.report(id, outcome);
  }

  /** The control plane holds this command's outcome. */
  acknowledged(id: string): void {
    this.options.memory.reported(id);
  }

  stop(): void {
    this.stopped = true;
    if (this.courier !== null) this.options.clock.clearTimeout(this.courier);
    this.courier = null;
  }

  private report(id: string, outcome: CommandOutcome): void {
    const sent = this.options.sendResult(id, outcome);
    // A control plane older than protocol 3 never acknowledges: what it got is all it will get.
    if (sent === "sent") return this.options.memory.reported(id);
    this.options.memory.markSent(id);
    this.schedule(RESULT_HTTP_AFTER_MS);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.courier !== null || this.options.memory.unacknowledged().length === 0) return;
    this.courier = this.options.clock.setTimeout(() => {
      this.courier = null;
      void this.postDue();
    }, delayMs);
  }

  /** Posts, one at a time, the results that have waited long enough; stops at the first failure worth retrying. */
  private async postDue(): Promise<void> {
    if (this.posting || this.stopped) return;
    this.posting = true;
    let retryInMs: number | null = null;
    try {
      const dueBefore = this.options.clock.now() - RESULT_HTTP_AFTER_MS;
      for (const { id, outcome, sentAt } of this.options.memory.unacknowledged()) {
        if (sentAt > dueBefore || this.stopped) continue;
        const fields = { host_id: this.options.hostId(), command_id: id };
        try {
          await this.options.postResult(id, outcome);
          this.options.log.info(fields, "command result sent over HTTP");
          this.options.memory.reported(id);
        } catch (error) {
          if (!settles(error)) {
            retryInMs = retryDelayMs(++this.postFailures, this.options.random, error instanceof MusterApiError ? error.retryAfterS : null);
            this.options.log.warn({ ...fields, err: (error as Error).message, retry_in_ms: Math.round(retryInMs) }, "cannot send a command result over HTTP; retrying");
            break;
          }
          // The control plane has settled this command otherwise (another result first, or no such command): nothing to resend.
          this.options.log.warn({ ...fields, err: (error as Error).message }, "the control plane refused a command result; not sending it again");
          this.options.memory.reported(id);
        }
      }
      if (retryInMs === null) this.postFailures = 0;
    } finally {
      this.posting = false;
    }
    this.schedule(retryInMs ?? RESULT_HTTP_AFTER_MS);
  }

  private async execute(command: CommandMessage): Promise<unknown> {
    const type = command.command_type;
    if ((BUILTIN_COMMANDS as readonly string[]).includes(type)) return this.options.builtins[type as (typeof BUILTIN_COMMANDS)[number]]();
    const handler = this.handlers.get(type);
    if (!handler) throw new MusterError(`this agent has no handler for command type '${type}'`);
    return handler(command.payload ?? {}, { id: command.id, type, expiresAt: new Date(command.expires_at) });
  }
}

/**
 * Whether an answer to a posted result is final for that result: 409 (the
 * command has another result), 404 (no such command of this host, or a
 * control plane without the route), 400 and 413 (it can never be accepted).
 * Anything else (401 until the credentials are refreshed, 429, 5xx, the
 * network) is worth another try.
 */
function settles(error: unknown): boolean {
  return error instanceof MusterApiError && [400, 404, 409, 413].includes(error.status);
}
