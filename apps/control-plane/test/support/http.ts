import type { Hono } from "hono";
import type { AppEnv } from "../../src/http/env.js";

export interface CallOptions {
  key?: string;
  hostToken?: string;
  body?: unknown;
  /** Sent as is, for malformed-input tests. */
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface CallResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** Drives the app in-process through Hono's fetch interface: the full middleware stack, no socket. */
export class HttpClient {
  constructor(private readonly app: Hono<AppEnv>) {}

  async call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<CallResult<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    if (options.hostToken !== undefined) headers["x-host-token"] = options.hostToken;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
    // Bytes, not a string: a string body would be given a text/plain Content-Type the test did not ask for.
    const response = await this.app.request(path, { method, headers, body: body === undefined ? undefined : new TextEncoder().encode(body) });
    const text = await bodyText(response);
    let parsed: unknown = text;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      // Not JSON (the docs page, metrics): keep the text.
    }
    return { status: response.status, body: parsed as T, headers: response.headers };
  }

  get = <T = any>(path: string, options?: CallOptions) => this.call<T>("GET", path, options);
  post = <T = any>(path: string, options?: CallOptions) => this.call<T>("POST", path, options);
  delete = <T = any>(path: string, options?: CallOptions) => this.call<T>("DELETE", path, options);
}

/** The body as text; of an event stream (which does not end) only its first frame, and the stream is left. */
async function bodyText(response: Response): Promise<string> {
  if (!response.headers.get("content-type")?.startsWith("text/event-stream")) return response.text();
  const reader = response.body!.getReader();
  const { value } = await reader.read();
  await reader.cancel();
  return new TextDecoder().decode(value);
}
