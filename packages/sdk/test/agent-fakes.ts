import type { HostCredentials } from "@muster/contract";
import type { AgentClock } from "../src/agent/clock.js";
import type { StoredCredentials } from "../src/agent/credentials.js";

/**
 * Test doubles for the agent runtime: a clock whose time moves only when the
 * test says so, and a control plane that lives in a fetch function. Nothing
 * here sleeps; every wait yields to the event loop until its condition holds.
 */

interface Timer {
  at: number;
  callback: () => void;
}

const WAIT_MS = 5_000;

/**
 * Lets promises and I/O callbacks run until `condition()` holds or 5 s of
 * real time passed; says which. Bounded by real time, not by event-loop turns:
 * key generation runs on libuv's thread pool, which a busy machine makes slow.
 */
async function waitFor(condition: () => boolean): Promise<boolean> {
  const until = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

export class FakeClock implements AgentClock {
  private nowMs: number;
  private readonly timers = new Map<number, Timer>();
  private nextId = 1;

  constructor(start = Date.parse("2026-03-01T00:00:00Z")) {
    this.nowMs = start;
  }

  now(): number {
    return this.nowMs;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMs + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Waits until a timer is pending, or `done()` says to stop waiting. */
  async waitForTimer(done: () => boolean = () => false): Promise<void> {
    if (!(await waitFor(() => this.timers.size > 0 || done()))) throw new Error(`FakeClock: no timer was set within ${WAIT_MS} ms`);
  }

  /**
   * Waits for the next timer, moves time to it and runs it, then lets the work
   * it started run until it sets another timer or `settled()` holds (for steps
   * after which the agent sets none: it stopped, or waits on a request).
   * Returns how far time moved.
   */
  async next(settled: () => boolean = () => false): Promise<number> {
    await this.waitForTimer();
    const [id, timer] = [...this.timers].sort((a, b) => a[1].at - b[1].at)[0]!;
    this.timers.delete(id);
    const delay = timer.at - this.nowMs;
    this.nowMs = timer.at;
    timer.callback();
    await this.waitForTimer(settled);
    return delay;
  }

  /** Moves time forward without running timers (the machine was asleep, say). */
  jump(ms: number): void {
    this.nowMs += ms;
  }
}

/** A deterministic random source: cycles through the given values. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

export const HOST_ID = `host-${"a".repeat(26)}`;

type Reply = { status: number; retryAfter?: number; message?: string } | "down" | "hang";
type RouteName = "register" | "refresh" | "heartbeat";

export interface Call {
  route: RouteName;
  at: number;
  token: string | null;
  /** The agent's clock as the call carried it (X-Muster-Agent-Clock). */
  agentClock: string | null;
  body: Record<string, unknown> | undefined;
}

/**
 * The three host endpoints of the control plane, as a fetch function. By default
 * it behaves like the real one: registration tokens work once, refresh tokens
 * rotate, heartbeats need a live, unexpired host JWT. `replies` overrides the
 * next answers of a route, one per call.
 */
export class FakeControlPlane {
  readonly url = "http://control-plane.test";
  readonly calls: Call[] = [];
  readonly replies: Record<RouteName, Reply[]> = { register: [], refresh: [], heartbeat: [] };
  registrationTokens = new Set(["reg-token-1"]);
  intervalS = 30;
  tokenTtlS = 3600;
  refreshTtlS = 90 * 86_400;
  /** Whether a CSR gets a certificate (false: a control plane that predates host certificates). */
  certify = true;
  /** How far the control plane's clock (its answers' Date header) is ahead of the agent's. */
  clockAheadMs = 0;
  private liveJwts = new Map<string, number>();
  /** Live refresh tokens and when each expires. */
  private liveRefresh = new Map<string, number>();
  private serial = 0;

  constructor(private readonly clock: FakeClock) {}

  /** Credentials as the control plane would issue them now, for seeding a store. */
  issue(): StoredCredentials {
    const response = this.credentials();
    return {
      version: 1,
      host_id: HOST_ID,
      control_plane: this.url,
      token: response.token,
      token_expires_at: response.token_expires_at,
      refresh_token: response.refresh_token,
      refresh_token_expires_at: response.refresh_token_expires_at,
      heartbeat_interval_s: response.heartbeat_interval_s,
      obtained_at: new Date(this.clock.now()).toISOString(),
    };
  }

  /** Every credential of the host dies (re-registration elsewhere, refresh-token reuse). */
  revokeAll(): void {
    this.liveJwts.clear();
    this.liveRefresh.clear();
  }

  callsTo(route: RouteName): Call[] {
    return this.calls.filter((call) => call.route === route);
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const response = await this.answer(input, init);
    response.headers.set("date", new Date(this.clock.now() + this.clockAheadMs).toUTCString());
    return response;
  };

  private async answer(input: Parameters<typeof fetch>[0], init: RequestInit | undefined): Promise<Response> {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : undefined;
    const route: RouteName | null =
      url.pathname === "/v1/hosts/register"
        ? "register"
        : url.pathname === "/v1/hosts/auth/refresh"
          ? "refresh"
          : /^\/v1\/hosts\/[^/]+\/heartbeat$/.test(url.pathname)
            ? "heartbeat"
            : null;
    if (!route) return error(404, "not_found", "no such route");
    this.calls.push({ route, at: this.clock.now(), token: headers.get("x-host-token"), agentClock: headers.get("x-muster-agent-clock"), body });

    const reply = this.replies[route].shift();
    if (reply === "down") throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
    if (reply === "hang") {
      return new Promise((_, reject) => {
        const signal = init!.signal!;
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    if (reply) {
      const headers: Record<string, string> = reply.retryAfter ? { "retry-after": String(reply.retryAfter) } : {};
      return error(reply.status, codeFor(reply.status), reply.message ?? `status ${reply.status}`, headers);
    }

    if (route === "register") {
      if (!this.registrationTokens.delete(String(body?.token))) return error(401, "unauthorized", "registration token is invalid, already used or expired");
      this.revokeAll();
      return json(201, this.credentials(this.certify ? body?.csr : undefined));
    }
    if (route === "refresh") {
      const token = String(body?.refresh_token);
      const expiresAt = this.liveRefresh.get(token);
      if (expiresAt === undefined || expiresAt <= this.clock.now()) {
        this.revokeAll();
        return error(401, "unauthorized", "refresh token is invalid, expired or revoked; the host must register again with a new registration token");
      }
      this.liveRefresh.delete(token);
      return json(200, this.credentials(this.certify ? body?.csr : undefined));
    }
    const jwt = headers.get("x-host-token") ?? "";
    const expiresAt = this.liveJwts.get(jwt);
    if (expiresAt === undefined || expiresAt <= this.clock.now()) return error(401, "unauthorized", "host token expired or revoked");
    if (!url.pathname.includes(HOST_ID)) return error(403, "forbidden", "another host");
    return new Response(null, { status: 204 });
  }

  /** With a CSR, a stand-in certificate (the agent stores it, it does not parse it). */
  private credentials(csr?: unknown): HostCredentials {
    const now = this.clock.now();
    const iat = Math.floor(now / 1000);
    const exp = iat + this.tokenTtlS;
    const serial = ++this.serial;
    const payload = Buffer.from(JSON.stringify({ sub: HOST_ID, host_id: HOST_ID, typ: "host", iat, exp, jti: `j${serial}` })).toString("base64url");
    const token = `eyJhbGciOiJIUzI1NiJ9.${payload}.sig${serial}`;
    const refreshToken = `mrt_refresh_${serial}`;
    this.liveJwts.set(token, exp * 1000);
    this.liveRefresh.set(refreshToken, now + this.refreshTtlS * 1000);
    return {
      host: hostView(new Date(now).toISOString()),
      token,
      token_expires_at: new Date(exp * 1000).toISOString(),
      refresh_token: refreshToken,
      refresh_token_expires_at: new Date(now + this.refreshTtlS * 1000).toISOString(),
      heartbeat_interval_s: this.intervalS,
      ...(typeof csr === "string"
        ? {
            certificate: `-----BEGIN CERTIFICATE-----\nfake-${serial}\n-----END CERTIFICATE-----\n`,
            certificate_expires_at: new Date(now + 86_400_000).toISOString(),
            ca_certificate: "-----BEGIN CERTIFICATE-----\nfake-ca\n-----END CERTIFICATE-----\n",
          }
        : {}),
    };
  }
}

function hostView(at: string): HostCredentials["host"] {
  return {
    id: HOST_ID, type: "regular", team_id: null, provider: null, availability_zone: null, arch: "x86_64", cpu_cores: 4,
    memory_mb: 8192, disk_gb: 100, address: "10.0.0.7:7070", hostname: "worker", os: "Linux", agent_version: "test", protocol_version: null,
    status: "pending", tags: [], metrics: null, last_heartbeat_at: null, clock_skew_ms: null, registered_at: at, cert_fingerprint: null,
    cert_expires_at: null, mtls_enabled: false, last_probe: null, created_by: `usr-${"b".repeat(26)}`,
    created_at: at, updated_at: at,
  };
}

function codeFor(status: number): string {
  return { 400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited", 503: "unavailable" }[status] ?? "internal";
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function error(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "content-type": "application/json", ...headers } });
}
