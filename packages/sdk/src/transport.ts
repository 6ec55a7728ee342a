import { ERROR_CODES, IDEMPOTENCY_KEY_HEADER, type ErrorCode, type RouteDef, type RouteResponse } from "@muster/contract";
import type { Static, TSchema } from "@sinclair/typebox";
import { MusterApiError, MusterConnectionError, MusterError } from "./errors.js";

/** The inputs a caller gives for a route: exactly the parts the contract declares. */
export type CallInput<R extends RouteDef> = (R["params"] extends TSchema ? { params: Static<R["params"]> } : unknown) &
  (R["query"] extends TSchema ? { query?: Static<R["query"]> } : unknown) &
  (R["headers"] extends TSchema ? { headers?: Static<R["headers"]> } : unknown) &
  (R["body"] extends TSchema
    ? R["bodyOptional"] extends true
      ? { body?: Static<R["body"]> }
      : { body: Static<R["body"]> }
    : unknown);

export interface RequestOptions {
  signal?: AbortSignal;
  /** Overrides the transport's timeout for this call. */
  timeoutMs?: number;
}

/** What the transport reads of an answer: a fetch Response has it all. */
export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  json(): Promise<unknown>;
  text(): Promise<string>;
}

/** An answer whose body is still arriving (Transport.open). */
export type StreamingResponse = ResponseLike & { readonly body: ReadableStream<Uint8Array> | null };

/** What the transport needs of fetch: the platform's fetch fits, and so does the agent's smaller one over node:http. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<ResponseLike>;

export interface TransportOptions {
  baseUrl: string;
  /** Headers that authenticate a call, asked for on every attempt (credentials may rotate). */
  authHeaders?: () => Record<string, string>;
  fetch?: FetchLike;
  timeoutMs?: number;
  /** Retries of a failed attempt, where a retry is safe. */
  maxRetries?: number;
  userAgent?: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 2;
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 10_000;
/** A server asking for a longer pause than this gets its error back at once: the caller decides whether to wait. */
const MAX_RETRY_AFTER_S = 60;

const KNOWN_CODES = new Set<string>(ERROR_CODES);

/**
 * Calls one route of the contract over fetch (no Node built-ins, so it runs in
 * browsers too). Retries only where it is safe: 429 and 503 (the request was not
 * processed) for any method, honouring Retry-After; network failures and other
 * 5xx only for GET and DELETE, which are idempotent, and for a call that
 * carries an Idempotency-Key, whose retry gets the first answer.
 */
export class Transport {
  private readonly fetch: FetchLike;
  readonly baseUrl: string;

  constructor(private readonly options: TransportOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
  }

  async call<R extends RouteDef>(route: R, input: NoInfer<CallInput<R>>, options: RequestOptions = {}): Promise<RouteResponse<R>> {
    const { headers, body } = input as unknown as { headers?: Record<string, string | undefined>; body?: unknown };
    const target = this.urlOf(route, input);
    const extraHeaders = Object.fromEntries(Object.entries(headers ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined));
    const idempotent = route.method === "get" || route.method === "delete" || extraHeaders[IDEMPOTENCY_KEY_HEADER] !== undefined;
    const maxRetries = this.options.maxRetries ?? DEFAULT_MAX_RETRIES;

    for (let attempt = 0; ; attempt++) {
      let response: ResponseLike;
      try {
        response = await this.attempt(route.method, target, extraHeaders, body, options);
      } catch (error) {
        if (error instanceof MusterConnectionError && idempotent && attempt < maxRetries && !options.signal?.aborted) {
          await sleep(backoffMs(attempt), options.signal);
          continue;
        }
        throw error;
      }
      if (response.ok) {
        return (response.status === 204 ? undefined : await response.json()) as RouteResponse<R>;
      }
      const error = await apiError(response);
      const waitTooLong = error.retryAfterS !== null && error.retryAfterS > MAX_RETRY_AFTER_S;
      const retryable = !waitTooLong && (error.status === 429 || error.status === 503 || (idempotent && error.status >= 500));
      if (retryable && attempt < maxRetries) {
        await sleep(error.retryAfterS !== null ? error.retryAfterS * 1000 : backoffMs(attempt), options.signal);
        continue;
      }
      throw error;
    }
  }

  /**
   * Opens a streaming route (GET, one attempt): resolves with the response
   * once its headers arrive (within the timeout), its body still streaming;
   * rejects as call() does when the API refuses. The body ends when the
   * server ends it or `options.signal` aborts; it has no timeout of its own.
   */
  async open<R extends RouteDef>(route: R, input: NoInfer<CallInput<R>>, options: RequestOptions & { headers?: Record<string, string> } = {}): Promise<StreamingResponse> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) throw options.signal.reason;
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    let response: StreamingResponse;
    try {
      // The platform's fetch streams its body; the agent's smaller fetch is never asked to open a stream.
      response = (await this.fetch(this.urlOf(route, input), {
        method: route.method.toUpperCase(),
        headers: { ...this.headers(undefined, route.responseType ?? "application/json"), ...options.headers },
        signal: controller.signal,
      })) as StreamingResponse;
    } catch (error) {
      options.signal?.removeEventListener("abort", onAbort);
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      const reason = controller.signal.aborted ? `timed out after ${timeoutMs} ms` : describe(error);
      throw new MusterConnectionError(`cannot reach the Muster control plane at ${this.baseUrl}: ${reason}`, controller.signal.aborted, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      options.signal?.removeEventListener("abort", onAbort);
      throw await apiError(response);
    }
    return response;
  }

  /** The route's URL: path parameters filled in, the query appended (arrays as repeated parameters). */
  private urlOf<R extends RouteDef>(route: R, input: CallInput<R>): string {
    const { params, query } = input as unknown as { params?: Record<string, string>; query?: Record<string, unknown> };
    const url = this.baseUrl + route.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params?.[name])));
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (Array.isArray(value)) for (const item of value) search.append(key, String(item));
      else if (value !== undefined) search.set(key, String(value));
    }
    return search.size > 0 ? `${url}?${search}` : url;
  }

  private headers(body: unknown, accept = "application/json", extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { accept, ...extra, ...this.options.authHeaders?.() };
    if (this.options.userAgent) headers["user-agent"] = this.options.userAgent;
    if (body !== undefined) headers["content-type"] = "application/json";
    return headers;
  }

  private async attempt(method: string, url: string, extraHeaders: Record<string, string>, body: unknown, options: RequestOptions): Promise<ResponseLike> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const headers = this.headers(body, "application/json", extraHeaders);
    try {
      return await this.fetch(url, {
        method: method.toUpperCase(),
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      const timedOut = timeout.aborted;
      const reason = timedOut ? `timed out after ${timeoutMs} ms` : describe(error);
      throw new MusterConnectionError(`cannot reach the Muster control plane at ${this.baseUrl}: ${reason}`, timedOut, { cause: error });
    }
  }
}

async function apiError(response: ResponseLike): Promise<MusterApiError> {
  const requestId = response.headers.get("x-request-id");
  const retryAfterS = parseRetryAfter(response.headers.get("retry-after"));
  const text = await response.text().catch(() => "");
  let code: ErrorCode = response.status >= 500 ? "internal" : "invalid_request";
  let message = `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
  let details: Record<string, unknown> = {};
  try {
    const envelope = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof envelope.error?.code === "string" && KNOWN_CODES.has(envelope.error.code)) code = envelope.error.code as ErrorCode;
    if (typeof envelope.error?.message === "string") message = envelope.error.message;
    if (envelope.error && typeof envelope.error === "object") {
      const { code: _code, message: _message, ...rest } = envelope.error as Record<string, unknown>;
      details = rest;
    }
  } catch {
    // Not an envelope (a proxy's error page): keep the status line.
  }
  return new MusterApiError(response.status, code, message, requestId, retryAfterS, details);
}

/** Retry-After is either seconds or an HTTP date (RFC 9110 §10.2.3). */
function parseRetryAfter(header: string | null): number | null {
  if (header === null || header.trim() === "") return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds > 0 ? seconds : null;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
}

/** Exponential backoff with full jitter. */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
}

export { MusterError };
