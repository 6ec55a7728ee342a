import { routes } from "@muster/contract";
import { Transport, type RequestOptions } from "../transport.js";
import { ApiKeys } from "./api-keys.js";
import { Audit } from "./audit.js";
import { Events } from "./events.js";
import { Hosts } from "./hosts.js";
import { System } from "./system.js";
import { Teams } from "./teams.js";
import { Users } from "./users.js";
import { Webhooks } from "./webhooks.js";

export interface MusterClientOptions {
  /** The control plane's address, e.g. `https://muster.example.com`. */
  baseUrl: string;
  /** An operator API key (`msk_…`); it decides what the client may see and do. */
  apiKey: string;
  /** Per-attempt timeout of every call (default 30 s); a call's own `timeoutMs` wins. */
  timeoutMs?: number;
  /** Retries where they are safe: GETs, DELETEs, and 429/503 of any method (default 2). */
  maxRetries?: number;
  /** A fetch to use instead of the global one (tests, proxies, instrumentation). */
  fetch?: typeof fetch;
  /** Sent as User-Agent where the runtime allows it (browsers ignore it). */
  userAgent?: string;
}

/**
 * The operator API of SPEC §4 for backend services and scripts. Every method
 * is typed from the contract, rejects with a `MusterApiError` (the API said
 * no) or a `MusterConnectionError` (no answer), and takes `{ signal, timeoutMs }`
 * as its last argument. Uses fetch only, so it runs in Node 20 and browsers.
 */
export class MusterClient {
  readonly hosts: Hosts;
  readonly teams: Teams;
  readonly users: Users;
  readonly apiKeys: ApiKeys;
  readonly audit: Audit;
  /** What happens to hosts and commands, as a resumable stream: `for await (const event of client.events.watch())`. */
  readonly events: Events;
  readonly webhooks: Webhooks;
  readonly system: System;
  /** The transport underneath, for routes this class does not wrap yet. */
  readonly transport: Transport;

  constructor(options: MusterClientOptions) {
    if (!options.baseUrl) throw new TypeError("MusterClient: baseUrl is required");
    if (!options.apiKey) throw new TypeError("MusterClient: apiKey is required");
    const { apiKey, ...transportOptions } = options;
    this.transport = new Transport({ ...transportOptions, authHeaders: () => ({ authorization: `Bearer ${apiKey}` }) });
    this.hosts = new Hosts(this.transport);
    this.teams = new Teams(this.transport);
    this.users = new Users(this.transport);
    this.apiKeys = new ApiKeys(this.transport);
    this.audit = new Audit(this.transport);
    this.events = new Events(this.transport);
    this.webhooks = new Webhooks(this.transport);
    this.system = new System(this.transport);
  }

  /** Who the key belongs to, the team it acts in and its role. */
  me(options?: RequestOptions) {
    return this.transport.call(routes.getMe, {}, options);
  }
}
