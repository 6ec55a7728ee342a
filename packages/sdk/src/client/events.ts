import { EVENTS_KEEPALIVE_S, LAST_EVENT_ID_HEADER, routes, type EventOfFilter, type EventTypeFilter } from "@muster/contract";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { MusterApiError, MusterConnectionError, MusterError } from "../errors.js";
import { backoffMs, type Transport } from "../transport.js";

export interface WatchOptions<F extends EventTypeFilter = EventTypeFilter> {
  /** Only these types (`host.*` and `command.*` take a whole kind); default: every type. */
  types?: readonly F[];
  /** Only events of this host. */
  hostId?: string;
  /** Only events of hosts carrying this tag when the event happened. */
  tag?: string;
  /** Start after this event ID (exclusive), e.g. one a previous run saved; default: from now. */
  after?: string;
  /** Ends the iteration (the loop finishes normally). */
  signal?: AbortSignal;
  /** Told each time a connection is up, with the position it starts after (an event ID, or the log's head). */
  onConnect?: (info: { position: string }) => void;
  /** Told each time the stream dropped and is about to be opened again. */
  onReconnect?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/** With nothing arriving this long, not even a keep-alive, the connection is taken for dead and opened again. */
const SILENCE_MS = 3 * EVENTS_KEEPALIVE_S * 1000;

/** The stream asked to resume past what the log keeps (or an ID it never issued): resync from a list, then watch from now. */
export class MusterEventsGoneError extends MusterError {
  override name = "MusterEventsGoneError";
  constructor(
    message: string,
    /** The oldest event the log still holds; null when it holds none. */
    readonly oldestId: string | null,
    override readonly cause: MusterApiError,
  ) {
    super(message);
  }
}

/** `client.events`: what happens to hosts and commands, as a stream. */
export class Events {
  constructor(private readonly transport: Transport) {}

  /**
   * Every event the key may see, as they happen, typed by `type`. The stream
   * is opened again with backoff whenever it drops (network, control-plane
   * restart, another process), resuming after the last event this iterator
   * yielded, so a `for await` loop never sees a gap or the same event twice.
   * Ends when `signal` aborts; throws MusterEventsGoneError when the log no
   * longer holds where it would resume, and MusterApiError when the API
   * refuses (401: the key was revoked).
   */
  async *watch<const F extends EventTypeFilter = EventTypeFilter>(options: WatchOptions<F> = {}): AsyncGenerator<EventOfFilter<F>, void, undefined> {
    const query = {
      ...(options.types && options.types.length > 0 ? { type: [...options.types] } : {}),
      ...(options.hostId ? { host_id: options.hostId } : {}),
      ...(options.tag ? { tag: options.tag } : {}),
    };
    let lastId = options.after ?? null;
    let attempt = 0;
    for (;;) {
      if (options.signal?.aborted) return;
      let failure: unknown = null;
      try {
        for await (const message of this.messages(query, lastId, options.signal)) {
          attempt = 0;
          if (message.id !== undefined) lastId = message.id;
          // A position frame (empty data) says where the stream starts; it is not an event.
          if (message.data !== "") yield JSON.parse(message.data) as EventOfFilter<F>;
          else if (message.id !== undefined) options.onConnect?.({ position: message.id });
        }
      } catch (error) {
        if (options.signal?.aborted) return;
        if (!retryable(error)) throw gone(error) ?? error;
        failure = error;
      }
      const delayMs = backoffMs(attempt++);
      options.onReconnect?.({ attempt, delayMs, error: failure });
      if (!(await pause(delayMs, options.signal))) return;
    }
  }

  /** One connection's messages, until the server ends it or it falls silent. */
  private async *messages(query: object, lastId: string | null, signal: AbortSignal | undefined): AsyncGenerator<EventSourceMessage> {
    const connection = new AbortController();
    const abort = () => connection.abort(signal?.reason);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const response = await this.transport.open(routes.streamEvents, { query } as never, {
        signal: connection.signal,
        headers: lastId === null ? {} : { [LAST_EVENT_ID_HEADER]: lastId },
      });
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      const parsed: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (message) => parsed.push(message) });
      let silence = setTimeout(() => connection.abort(new MusterConnectionError("the event stream fell silent", true)), SILENCE_MS);
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          clearTimeout(silence);
          silence = setTimeout(() => connection.abort(new MusterConnectionError("the event stream fell silent", true)), SILENCE_MS);
          parser.feed(decoder.decode(value, { stream: true }));
          while (parsed.length > 0) yield parsed.shift()!;
        }
      } finally {
        clearTimeout(silence);
        await reader.cancel().catch(() => {});
      }
    } catch (error) {
      if (connection.signal.aborted && !signal?.aborted && connection.signal.reason instanceof MusterConnectionError) throw connection.signal.reason;
      throw error;
    } finally {
      signal?.removeEventListener("abort", abort);
      connection.abort();
    }
  }
}

/** Worth opening the stream again: no answer, a dropped connection, the server's trouble or a request to slow down. */
function retryable(error: unknown): boolean {
  if (error instanceof MusterApiError) return error.status === 429 || error.status >= 500;
  // A dropped body read surfaces as whatever the runtime's fetch throws (TypeError, AbortError, …).
  return !(error instanceof MusterError) || error instanceof MusterConnectionError;
}

function gone(error: unknown): MusterEventsGoneError | null {
  if (!(error instanceof MusterApiError) || error.code !== "gone") return null;
  const oldest = error.details.oldest_id;
  return new MusterEventsGoneError(error.message, typeof oldest === "string" ? oldest : null, error);
}

/** Waits `ms`; false when `signal` aborted meanwhile. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => (clearTimeout(timer), resolve(false));
    const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve(true)), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
