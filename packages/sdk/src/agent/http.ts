import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type AgentOptions as HttpsAgentOptions } from "node:https";
import type { FetchLike, ResponseLike } from "../transport.js";

/** An answer larger than this is not the control plane's: its bodies are a few KiB. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * The agent's HTTP calls over node:http / node:https. The agent makes a
 * handful of small JSON calls (registration, refreshes, heartbeats while its
 * channel is down); Node's fetch would load undici for them, which costs an
 * agent ~11 MiB of resident memory and ~30 ms at start (docs/benchmarks.md).
 * Connections are kept alive on an agent of their own, so TLS options (the
 * certificate pin) apply to every connection it makes and to no other.
 */
export function httpFetch(tls: HttpsAgentOptions = {}): FetchLike {
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true, ...tls }) };
  return (url, init) =>
    new Promise<ResponseLike>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === "https:";
      const headers: Record<string, string | number> = { ...init.headers };
      if (init.body !== undefined) headers["content-length"] = Buffer.byteLength(init.body);
      const send = secure ? httpsRequest : httpRequest;
      // The same shape as fetch's failures (a TypeError whose cause is the socket's error), so callers read both alike.
      const fail = (error: Error) => reject(new TypeError("fetch failed", { cause: error }));
      const request = send(target, { method: init.method, headers, agent: secure ? agents.https : agents.http, signal: init.signal }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) return void request.destroy(new Error(`the response is larger than ${MAX_RESPONSE_BYTES} bytes`));
          chunks.push(chunk);
        });
        response.on("end", () => resolve(answer(response.statusCode ?? 0, response.headers, Buffer.concat(chunks).toString("utf8"))));
        response.on("error", fail);
        response.on("close", () => {
          if (!response.complete) fail(new Error("the connection closed before the response ended"));
        });
      });
      request.on("error", fail);
      request.end(init.body);
    });
}

function answer(status: number, headers: IncomingHttpHeaders, text: string): ResponseLike {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name: string) {
        const value = headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
      },
    },
    text: async () => text,
    json: async () => JSON.parse(text) as unknown,
  };
}
