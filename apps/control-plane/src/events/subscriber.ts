import { eventMatches, type EventFilter, type StoredEvent } from "../services/events.js";

const encoder = new TextEncoder();

/** A stream's frame for one event: `id:` (what Last-Event-ID resumes after) and the event as JSON. */
export function eventFrame(event: StoredEvent): Uint8Array {
  return encoder.encode(`id: ${event.position}\ndata: ${event.json}\n\n`);
}

/**
 * The position a stream starts at, before any event: `data:` left empty makes
 * browsers' EventSource record the ID without firing an event, and tells the
 * SDK where to resume if the connection drops before the first event.
 */
function positionFrame(position: bigint, retryMs: number): Uint8Array {
  return encoder.encode(`retry: ${retryMs}\nid: ${position}\ndata:\n\n`);
}

export const KEEPALIVE_FRAME = encoder.encode(": keep-alive\n\n");

/** Why the control plane ended a stream (a client's own close has none). */
export type EndReason = "too_slow" | "key_revoked" | "shutdown";

/** Bytes a subscriber may fall behind by (its socket not draining) before it is dropped to catch up from the log. */
export const MAX_BEHIND_BYTES = 4 * 1024 * 1024;
const HIGH_WATER_BYTES = 64 * 1024;
/** What the stream suggests to EventSource clients for reconnecting. */
const RETRY_MS = 2_000;

/**
 * One GET /v1/events response. The hub offers it events in log order; it
 * sends those past its cursor that its filter lets through. A subscriber
 * that stops reading is dropped rather than buffered without end: its client
 * reconnects with Last-Event-ID and catches up from the log.
 */
export class Subscriber {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private ended = false;
  private readonly onEnd: (subscriber: Subscriber, reason: EndReason | undefined) => void;

  constructor(
    readonly filter: EventFilter,
    /** The API key the stream was opened with: the stream ends when the key stops being live. */
    readonly keyId: string,
    /** The last position this subscriber has been given or passed over. */
    public cursor: bigint,
    onEnd: (subscriber: Subscriber, reason: EndReason | undefined) => void,
    /** A stream from now: events committed before it opened, which it passes over (see streamStart). */
    private readonly committedBefore?: (position: bigint) => boolean,
  ) {
    this.onEnd = onEnd;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
          controller.enqueue(positionFrame(cursor, RETRY_MS));
        },
        cancel: () => this.finish(undefined),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER_BYTES }),
    );
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Sends the event if it is past the cursor and passes the filter; `frame` is eventFrame(event), made once for every subscriber. */
  offer(event: StoredEvent, frame: Uint8Array): void {
    if (this.ended || event.position <= this.cursor) return;
    this.cursor = event.position;
    if (this.committedBefore?.(event.position) || !eventMatches(event, this.filter)) return;
    this.send(frame);
  }

  keepAlive(): void {
    if (!this.ended) this.send(KEEPALIVE_FRAME);
  }

  /** Ends the stream; a comment says why (clients reconnect, and learn more from the answer they get then). */
  close(why: string, reason?: EndReason): void {
    if (this.ended) return;
    this.controller.enqueue(encoder.encode(`: ${why}\n\n`));
    this.controller.close();
    this.finish(reason);
  }

  private send(frame: Uint8Array): void {
    if ((this.controller.desiredSize ?? 0) < HIGH_WATER_BYTES - MAX_BEHIND_BYTES) {
      return this.close("too far behind; reconnect with Last-Event-ID to catch up", "too_slow");
    }
    this.controller.enqueue(frame);
  }

  private finish(reason: EndReason | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this, reason);
  }
}
