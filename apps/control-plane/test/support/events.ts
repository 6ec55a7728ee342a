import { createParser } from "eventsource-parser";
import type { MusterEvent } from "@muster/contract";
import type { TestApp } from "./app.js";

export interface StreamOptions {
  key: string;
  query?: string;
  lastEventId?: string;
}

/**
 * One GET /v1/events response read as a client would: events in arrival
 * order, the position frame (`id:` with empty data) and comments apart.
 */
export class EventStream {
  readonly events: MusterEvent[] = [];
  readonly comments: string[] = [];
  /** The last `id:` the stream sent, events and position frames alike: what a client resumes after. */
  lastId: string | null = null;
  private readonly waiters = new Set<() => void>();
  readonly ended: Promise<void>;
  private readonly controller = new AbortController();

  constructor(readonly response: Response) {
    const parser = createParser({
      onEvent: (message) => {
        if (message.id !== undefined) this.lastId = message.id;
        if (message.data !== "") this.events.push(JSON.parse(message.data) as MusterEvent);
        this.notify();
      },
      onComment: (comment) => {
        this.comments.push(comment.trim());
        this.notify();
      },
    });
    const body = response.body!;
    this.ended = (async () => {
      const reader = body.getReader();
      const decoder = new TextDecoder();
      this.controller.signal.addEventListener("abort", () => void reader.cancel().catch(() => {}));
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
      } catch {
        // Cancelled by close(): the client went away.
      }
      this.notify();
    })();
  }

  static async open(t: TestApp, options: StreamOptions): Promise<EventStream> {
    const response = await EventStream.request(t, options);
    if (response.status !== 200) throw new Error(`GET /v1/events answered ${response.status}: ${await response.text()}`);
    return new EventStream(response);
  }

  static request(t: TestApp, options: StreamOptions): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.key}`, accept: "text/event-stream" };
    if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
    return Promise.resolve(t.runtime.app.request(`/v1/events${options.query ? `?${options.query}` : ""}`, { headers }));
  }

  /** Waits until `count` events have arrived (or `timeoutMs` passed, which fails). */
  async waitFor(count: number, timeoutMs = 5_000): Promise<MusterEvent[]> {
    await this.until(() => this.events.length >= count, timeoutMs, () => `${count} events (got ${this.events.length}: ${this.types()})`);
    return this.events.slice(0, count);
  }

  async until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.add(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  /** Events of these types so far, for failure messages. */
  types(): string {
    return this.events.map((event) => event.type).join(", ");
  }

  /** Leaves the stream as a client would (the server sees the connection go). */
  async close(): Promise<void> {
    this.controller.abort();
    await this.ended;
  }

  private notify(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }
}

/** No further event arrives for a while: what "and by no other" looks like on a stream. */
export async function quietFor(stream: EventStream, ms: number): Promise<void> {
  const seen = stream.events.length;
  await new Promise((resolve) => setTimeout(resolve, ms));
  if (stream.events.length !== seen) throw new Error(`unexpected events: ${stream.events.slice(seen).map((event) => event.type).join(", ")}`);
}
