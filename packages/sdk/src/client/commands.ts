import { IDEMPOTENCY_KEY_HEADER, routes, TERMINAL_COMMAND_STATUSES } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf, QueryOf, ResponseOf } from "./types.js";
import { pollUntil, type PollOptions } from "./wait.js";

type Command = ResponseOf<typeof routes.getCommand>;

export type CommandWaitOptions = PollOptions<Command>;

export interface SendCommandOptions extends RequestOptions {
  /**
   * Makes the send safe to repeat: the same key (from the same API key, within
   * 24 hours) with the same body gets the first answer, not a second command.
   * Default: a new random key for this call, which covers its own retries.
   */
  idempotencyKey?: string;
}

const COMMAND_POLL_MS = 500;

/** Commands for hosts' agents: `client.hosts.commands`. */
export class HostCommands {
  constructor(private readonly transport: Transport) {}

  /**
   * Sends a command (`{type, payload?, timeout_s?}`); it is delivered over the
   * host's channel at once, or when the host connects before `timeout_s` passes.
   * Resolves with the command as queued; `wait()` (or `run()`) awaits its result.
   * It goes with an Idempotency-Key, so a connection lost before the answer,
   * or a 503, is retried without ever queueing the command twice.
   */
  send(hostId: string, body: BodyOf<typeof routes.sendCommand>, options: SendCommandOptions = {}) {
    const { idempotencyKey = crypto.randomUUID(), ...request } = options;
    return this.transport.call(routes.sendCommand, { params: { id: hostId }, headers: { [IDEMPOTENCY_KEY_HEADER]: idempotencyKey }, body }, request);
  }

  get(hostId: string, commandId: string, options?: RequestOptions) {
    return this.transport.call(routes.getCommand, { params: { id: hostId, command_id: commandId } }, options);
  }

  /** The host's commands, newest first (`status` to filter), fetched page by page as it is iterated. */
  list(hostId: string, filters?: ListFilters<typeof routes.listCommands>, options?: RequestOptions) {
    return paginate(this.transport, routes.listCommands, filters, options, { id: hostId });
  }

  /** One page; pass the previous page's `next_cursor` as `cursor` for the next. */
  listPage(hostId: string, query?: QueryOf<typeof routes.listCommands>, options?: RequestOptions) {
    return this.transport.call(routes.listCommands, { params: { id: hostId }, query }, options);
  }

  /**
   * Polls until the command has ended (succeeded, failed or expired) and
   * returns it; a failure is a result, not a throw: check `status`. Gives up
   * after `timeoutMs` (default 10 minutes) with MusterWaitTimeoutError.
   */
  wait(hostId: string, commandId: string, options: CommandWaitOptions = {}): Promise<Command> {
    return pollUntil(
      (signal) => this.get(hostId, commandId, { signal }),
      (command) => TERMINAL_COMMAND_STATUSES.includes(command.status),
      { pollIntervalMs: COMMAND_POLL_MS, ...options },
      (timeoutMs, last) => `command ${commandId} did not end within ${timeoutMs} ms${last ? ` (last seen ${last.status})` : ""}`,
    );
  }

  /** Sends a command and waits until it has ended; by default as long as the command's own timeout. */
  async run(hostId: string, body: BodyOf<typeof routes.sendCommand>, options: CommandWaitOptions & { idempotencyKey?: string } = {}): Promise<Command> {
    const { idempotencyKey, ...wait } = options;
    const command = await this.send(hostId, body, { ...(options.signal && { signal: options.signal }), ...(idempotencyKey && { idempotencyKey }) });
    // A little past the command's deadline, so the wait sees it expire rather than time out first.
    return this.wait(hostId, command.id, { timeoutMs: command.timeout_s * 1000 + 5_000, ...wait });
  }
}
