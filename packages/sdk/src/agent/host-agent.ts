import {
  CHANNEL_CLOSE,
  AGENT_CLOCK_HEADER,
  HOST_TOKEN_HEADER,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  routes,
  type HeartbeatMetrics,
  type RegisterHostBody,
} from "@muster/contract";
import { MusterApiError, MusterConnectionError, MusterError } from "../errors.js";
import { Transport, type FetchLike } from "../transport.js";
import { backoffDelayMs, heartbeatDelayMs, retryDelayMs } from "./backoff.js";
import { AgentChannel } from "./channel.js";
import { CommandRunner } from "./commands.js";
import { httpFetch } from "./http.js";
import { CommandMemory, MemoryCommandOutcomeStore } from "./outcomes.js";
import { pinErrorOf, pinnedTls, type CertificatePinError, type PinnedTls } from "./tls.js";
import { systemClock, type AgentClock } from "./clock.js";
import { clockSkewMs, ClockSkewWatch } from "./clock-skew.js";
import { CredentialsFileError, refreshDueAt, toStoredCredentials, type StoredCredentials } from "./credentials.js";
import { TypedEmitter } from "./emitter.js";
import { newHostKey, refreshProof, type HostKeyRequest } from "./host-key.js";
import type {
  AgentExit,
  AgentLogger,
  CommandHandler,
  HostAgentEvents,
  HostAgentOptions,
  HostAgentState,
  RefreshReason,
} from "./types.js";

/** How long registration keeps retrying: inside the 5 minutes in which the control plane answers the same machine's retry again. */
const REGISTRATION_RETRY_MS = 4 * 60_000;

const silentLogger: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };
const MAX_CLOCK_SKEW_MS = 10_000;

/** Registration did not happen; nothing was saved. `cause` holds the underlying MusterApiError or MusterConnectionError. */
export class RegistrationError extends MusterError {
  override name = "RegistrationError";
}

type RefreshOutcome = { kind: "ok" } | { kind: "ended" } | { kind: "failed"; error: MusterError };
type BeatOutcome =
  | { kind: "ok" }
  | { kind: "unauthorized"; error: MusterApiError }
  | { kind: "deleted"; error: MusterApiError }
  | { kind: "too_old"; error: MusterApiError }
  | { kind: "pin_mismatch"; error: CertificatePinError }
  | { kind: "failed"; error: MusterError };


interface InFlight {
  controller: AbortController;
  /** Registration and refresh: the server may act on them, so stop() lets them finish and be saved. */
  critical: boolean;
  settled: Promise<void>;
}

/**
 * The agent runtime of SPEC §7, for `muster-agent` and any Node daemon that
 * embeds it: registers with the machine's specs, keeps the credentials in a
 * store, heartbeats at the interval the control plane gives (first beat at
 * once, then with jitter), refreshes ahead of expiry, and reacts to 401
 * (refresh, then give up), 404 (wipe, report deletion) and network failures
 * (backoff 1 s → 60 s with jitter; lost after 3 in a row, restored on the next
 * success). What happens is told through typed events and the optional logger.
 *
 * One timer drives everything, and one step (refresh if due, then beat) runs at
 * a time, so there is never more than one request in flight.
 *
 * Alongside, it keeps the agent channel (a WebSocket it dials out) open: while
 * the channel is up heartbeats travel over it and commands arrive on it; when
 * it drops, heartbeats fall back to HTTP and the channel is redialed with
 * backoff (1 s → 60 s, jittered). A control plane that refuses this agent's
 * protocol version stops the agent: retrying cannot help.
 */
export class HostAgent {
  private readonly clock: AgentClock;
  private readonly random: () => number;
  private readonly log: AgentLogger;
  private readonly events: TypedEmitter<HostAgentEvents>;
  private readonly anonymous: Transport;
  private readonly authenticated: Transport;
  private readonly baseUrl: string;
  /** Over https: verification plus the saved pin, for HTTP calls and the channel alike. */
  private readonly tls: PinnedTls | null;

  private status: HostAgentState = "idle";
  private creds: StoredCredentials | null = null;
  private refreshAt = Infinity;
  private refreshRetryAt = 0;
  private refreshFailures = 0;
  private unsaved = false;
  private failures = 0;
  private accepted = 0;
  private firstFailureAt = 0;
  private lost = false;
  private timer: unknown = null;
  private step: Promise<void> | null = null;
  private readonly inFlight = new Set<InFlight>();
  private resolveDone!: (exit: AgentExit) => void;

  private channel: AgentChannel | null = null;
  private channelUp = false;
  private channelFailures = 0;
  /** Dial the channel when the current step ends (set at start, for the first step). */
  private dialAfterStep = false;
  private redialTimer: unknown = null;
  private readonly commands: CommandRunner;
  /** Waiting for a refresh asked for by a `refresh_credentials` command; the next step does it. */
  private refreshWaiters: ((outcome: RefreshOutcome) => void)[] = [];

  /** Settles once, when the agent stops, with the reason. */
  readonly done: Promise<AgentExit>;

  constructor(private readonly options: HostAgentOptions) {
    if (!options.controlPlane) throw new TypeError("HostAgent: controlPlane is required");
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.log = options.logger ?? silentLogger;
    this.events = new TypedEmitter((event, error) =>
      this.log.error({ event, err: describe(error) }, "a HostAgent event listener failed; the agent carries on"),
    );
    this.tls = /^https:/i.test(options.controlPlane) ? pinnedTls(() => this.creds?.server_certificate_pin, options.ca) : null;
    const skew = this.clockSkewWatch(options.maxClockSkewMs ?? MAX_CLOCK_SKEW_MS);
    const fetchFn = options.fetch ?? this.tls?.fetch ?? httpFetch();
    const transport = {
      baseUrl: options.controlPlane,
      fetch: async (...request: Parameters<FetchLike>) => {
        const response = await fetchFn(...request);
        skew.observe(clockSkewMs(response.headers.get("date"), this.clock.now()));
        return response;
      },
      maxRetries: 0,
      userAgent: options.userAgent,
    };
    // Every call names the protocol, so a control plane that no longer speaks it refuses at once (426) instead of half-working,
    // and carries this host's clock, so the control plane can record how far it is off.
    const common = () => ({ [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [AGENT_CLOCK_HEADER]: new Date(this.clock.now()).toISOString() });
    this.anonymous = new Transport({ ...transport, authHeaders: common });
    this.authenticated = new Transport({ ...transport, authHeaders: () => ({ ...common(), [HOST_TOKEN_HEADER]: this.creds?.token ?? "" }) });
    this.baseUrl = this.anonymous.baseUrl;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    const outcomes = options.commandOutcomes ?? options.credentials.commandOutcomes?.() ?? new MemoryCommandOutcomeStore();
    this.commands = new CommandRunner({
      builtins: {
        ping: async () => ({ pong: true, agent_version: options.agentVersion ?? null, memory: processMemory() }),
        refresh_credentials: () => this.refreshOnCommand(),
      },
      memory: new CommandMemory(outcomes, this.clock, this.log),
      log: this.log,
      clock: this.clock,
      random: this.random,
      hostId: () => this.hostId,
      // The channel may have been replaced since the command came (a refresh redials it): the result goes on the one open now.
      sendResult: (id, outcome) => {
        if (!this.channelUp || !this.channel) return "none";
        this.channel.result(id, outcome);
        return this.channel.acknowledgesResults ? "acknowledged" : "sent";
      },
      postResult: async (id, outcome) => {
        const hostId = this.creds?.host_id;
        if (!hostId) throw new MusterError("the agent has no credentials");
        await this.request(false, (signal) =>
          this.authenticated.call(
            routes.submitCommandResult,
            { params: { id: hostId, command_id: id }, body: outcome },
            { signal, timeoutMs: this.options.heartbeatTimeoutMs ?? 10_000 },
          ),
        );
      },
    });
  }

  on<K extends keyof HostAgentEvents>(event: K, listener: (payload: HostAgentEvents[K]) => void | Promise<void>): () => void {
    return this.events.on(event, listener);
  }

  once<K extends keyof HostAgentEvents>(event: K, listener: (payload: HostAgentEvents[K]) => void | Promise<void>): () => void {
    return this.events.once(event, listener);
  }

  off<K extends keyof HostAgentEvents>(event: K, listener: (payload: HostAgentEvents[K]) => void | Promise<void>): void {
    this.events.off(event, listener);
  }

  /**
   * Handles commands of `type` sent to this host (`POST /v1/hosts/{id}/commands`).
   * The handler gets the payload; what it returns is the command's result, what
   * it throws its failure. `ping` and `refresh_credentials` are built in.
   */
  onCommand(type: string, handler: CommandHandler): () => void {
    return this.commands.on(type, handler);
  }

  /**
   * Forgets the control plane's certificate pin, for a control plane whose key
   * was replaced on purpose: the next connection is checked against the CAs
   * only, and the first step refreshes the credentials, which brings the new
   * pin. Call it before `start()`.
   */
  async repin(): Promise<void> {
    if (this.status !== "idle") throw new MusterError(`HostAgent.repin: the agent is ${this.status}; call it before start()`);
    const saved = this.creds ?? (await this.options.credentials.load());
    if (!saved) throw new CredentialsFileError("missing", `no saved credentials in ${this.options.credentials.description}: nothing to re-pin`);
    const { server_certificate_pin: dropped, ...rest } = saved;
    await this.options.credentials.save(rest);
    this.adopt(rest);
    this.refreshAt = 0;
    this.log.info({ host_id: rest.host_id, dropped_pin: dropped ?? null }, "certificate pin cleared; the next refresh pins the control plane's certificate again");
  }

  /** Whether the channel is open (heartbeats and commands travel over it). */
  get channelOpen(): boolean {
    return this.channelUp;
  }

  get state(): HostAgentState {
    return this.status;
  }

  get hostId(): string | null {
    return this.creds?.host_id ?? null;
  }

  /** The credentials in use (a copy). */
  get credentials(): StoredCredentials | null {
    return this.creds ? { ...this.creds } : null;
  }

  /**
   * Trades a registration token and the machine's specs for credentials and
   * saves them, replacing any saved before. Throws `RegistrationError` when the
   * control plane says no or cannot be reached; then nothing is written.
   */
  async register(input: { token: string; address: string }): Promise<StoredCredentials> {
    if (this.status !== "idle") throw new MusterError(`HostAgent.register: the agent is ${this.status}`);
    if (!this.options.specs) throw new TypeError("HostAgent.register: the `specs` option is required to register");
    const specs = await this.options.specs();
    const body: RegisterHostBody = { ...specs, token: input.token, address: input.address };
    if (this.options.agentVersion) body.agent_version = this.options.agentVersion;
    const key = await this.newKey();
    if (key) body.csr = key.csrPem;

    // The same body (the same key and CSR) on every attempt: a retry after a lost answer is recognised and answered again.
    const response = await this.sendRegistration(body);
    const credentials = toStoredCredentials(response, this.baseUrl, this.clock.now(), key?.privateKeyPem);
    try {
      await this.options.credentials.save(credentials);
    } catch (error) {
      throw new CredentialsFileError(
        "unwritable",
        `registered as ${credentials.host_id}, but the credentials could not be saved (${(error as Error).message}); the registration token is used up: ask an operator for a new one (POST /v1/hosts/${credentials.host_id}/token)`,
        { cause: error },
      );
    }
    this.adopt(credentials);
    this.log.info({ host_id: credentials.host_id, credentials: this.options.credentials.description }, "host registered; credentials saved");
    this.events.emit("registered", { hostId: credentials.host_id, host: response.host, credentials: { ...credentials } });
    return credentials;
  }

  /**
   * Sends the registration, again after failures that may be retried, with
   * backoff (Retry-After when given), for up to REGISTRATION_RETRY_MS: within
   * the control plane's window for answering a retry from the same machine.
   */
  private async sendRegistration(body: RegisterHostBody) {
    const giveUpAt = this.clock.now() + REGISTRATION_RETRY_MS;
    for (let failures = 1; ; failures++) {
      try {
        return await this.request(true, (signal) =>
          this.anonymous.call(routes.registerHost, { body }, { signal, timeoutMs: this.options.credentialTimeoutMs ?? 30_000 }),
        );
      } catch (error) {
        const retryInMs = retryDelayMs(failures, this.random, retryAfterOf(error));
        if (!registrationRetryable(error) || this.status !== "idle" || this.clock.now() + retryInMs > giveUpAt) {
          throw new RegistrationError(registrationMessage(error, this.baseUrl), { cause: error });
        }
        this.log.warn({ err: describe(error), attempt: failures, retry_in_ms: Math.round(retryInMs) }, "registration failed; retrying");
        await this.pause(retryInMs);
        if (this.status !== "idle") throw new RegistrationError("the agent was stopped before the registration completed. Nothing was saved.", { cause: error });
      }
    }
  }

  /** Waits on the agent's clock; cut short when the agent stops. */
  private async pause(ms: number): Promise<void> {
    let timer: unknown = null;
    await Promise.race([new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, ms))), this.done]);
    this.clock.clearTimeout(timer);
  }

  /**
   * Starts heartbeating with the credentials from `register()`, or else the
   * saved ones. Throws `CredentialsFileError` when there are none or they
   * cannot be read. The first heartbeat goes out at once.
   */
  async start(): Promise<void> {
    if (this.status !== "idle") throw new MusterError(`HostAgent.start: the agent is ${this.status}`);
    if (!this.creds) {
      const saved = await this.options.credentials.load();
      if (!saved) {
        throw new CredentialsFileError(
          "missing",
          `no saved credentials in ${this.options.credentials.description}: register this host first with a registration token`,
        );
      }
      this.adopt(saved);
    }
    const creds = this.creds!;
    if (creds.control_plane.replace(/\/+$/, "") !== this.baseUrl) {
      this.log.warn(
        { issued_by: creds.control_plane, using: this.baseUrl },
        "the saved credentials were issued by another control plane address; using them with this one",
      );
    }
    await this.commands.load();
    this.status = "running";
    this.log.info({ host_id: creds.host_id, heartbeat_interval_s: creds.heartbeat_interval_s }, "agent started");
    this.events.emit("started", { hostId: creds.host_id, heartbeatIntervalS: creds.heartbeat_interval_s });
    // The first heartbeat goes out alone, over HTTP: a channel dialed alongside would hold it back. The channel follows once it is answered.
    this.dialAfterStep = this.options.channel !== false;
    this.schedule(0);
  }

  /**
   * Stops: no new request starts, a heartbeat in flight is aborted at once, a
   * registration or refresh in flight gets `stopGraceMs` to finish and be saved.
   * Resolves when nothing is left running.
   */
  async stop(): Promise<AgentExit> {
    if (this.status === "stopped" || this.status === "stopping") return this.done;
    const wasIdle = this.status === "idle";
    this.status = "stopping";
    this.clearTimer();
    this.hangUp();
    const critical = [...this.inFlight].filter((request) => request.critical);
    for (const request of this.inFlight) if (!request.critical) request.controller.abort(stopReason());
    if (critical.length > 0) {
      let graceTimer: unknown = null;
      const grace = new Promise<void>((resolve) => (graceTimer = this.clock.setTimeout(resolve, this.options.stopGraceMs ?? 600)));
      await Promise.race([Promise.all(critical.map((request) => request.settled)), grace]);
      this.clock.clearTimeout(graceTimer);
      for (const request of this.inFlight) request.controller.abort(stopReason());
    }
    await this.step;
    if (!wasIdle || this.creds) this.log.info({ host_id: this.hostId }, "agent stopped");
    this.finish({ reason: "stopped" });
    return this.done;
  }

  private newKey(): Promise<HostKeyRequest | null> {
    return this.options.certificate === false ? Promise.resolve(null) : newHostKey();
  }

  /** Warns when this host's clock strays from the control plane's: certificates and token lifetimes are judged by clocks. */
  private clockSkewWatch(boundMs: number): ClockSkewWatch {
    return new ClockSkewWatch(boundMs, (skewMs, over) => {
      const hostId = this.creds?.host_id ?? null;
      const fields = { host_id: hostId, clock_skew_ms: Math.round(skewMs), bound_ms: boundMs };
      if (over) {
        const direction = skewMs > 0 ? "ahead of" : "behind";
        this.log.warn(
          fields,
          `this host's clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${direction} the control plane's (bound ${boundMs / 1000} s): ` +
            "certificates may look not yet valid or expired to one side; sync it with NTP (e.g. `timedatectl set-ntp true`, or chrony)",
        );
      } else {
        this.log.info(fields, "this host's clock is back within the bound of the control plane's");
      }
      this.events.emit("clockSkew", { hostId, skewMs, boundMs, over });
    });
  }

  private adopt(credentials: StoredCredentials): void {
    this.creds = credentials;
    this.refreshAt = refreshDueAt(credentials, this.options.refreshRatio ?? 0.8);
    this.refreshRetryAt = 0;
    this.refreshFailures = 0;
  }

  private schedule(delayMs: number): void {
    this.clearTimer();
    if (!this.running) return;
    if (this.refreshWaiters.length > 0) delayMs = 0;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.step = this.runStep().finally(() => {
        this.step = null;
        if (this.dialAfterStep && this.running) {
          this.dialAfterStep = false;
          this.dial();
        }
      });
    }, delayMs);
  }

  private clearTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private get running(): boolean {
    return this.status === "running";
  }

  /** One step: refresh if due, heartbeat, then schedule the next step. */
  private async runStep(): Promise<void> {
    try {
      if (this.unsaved) await this.saveAgain();
      const now = this.clock.now();
      const asked = this.refreshWaiters.length > 0;
      if (this.running && (asked || (now >= this.refreshAt && now >= this.refreshRetryAt))) {
        const waiters = this.refreshWaiters;
        this.refreshWaiters = [];
        const refreshed = await this.refresh(asked ? "command" : "proactive");
        for (const waiter of waiters) waiter(refreshed);
        if (refreshed.kind === "ended" || !this.running) return;
        if (refreshed.kind === "failed") {
          // The token is still good until it expires: keep beating, retry the refresh later.
          this.refreshFailures++;
          const retryInMs = retryDelayMs(this.refreshFailures, this.random, retryAfterOf(refreshed.error));
          this.refreshRetryAt = this.clock.now() + retryInMs;
          this.log.warn({ host_id: this.hostId, err: refreshed.error.message, retry_in_ms: Math.round(retryInMs) }, "credential refresh failed; will retry");
        }
      }
      if (!this.running) return;

      let beat = await this.beat();
      if (!this.running) return;
      if (beat.kind === "unauthorized") {
        this.log.warn({ host_id: this.hostId, status: beat.error.status, err: beat.error.message }, "heartbeat refused; refreshing the credentials");
        const refreshed = await this.refresh("unauthorized");
        if (refreshed.kind === "ended" || !this.running) return;
        if (refreshed.kind === "failed") {
          beat = refreshed;
        } else {
          beat = await this.beat();
          if (!this.running) return;
          if (beat.kind === "unauthorized") {
            await this.endReregistration(`the control plane refuses even fresh credentials (${beat.error.message})`);
            return;
          }
        }
      }
      if (beat.kind === "deleted") return await this.endDeleted(beat.error.message);
      if (beat.kind === "too_old") return this.endTooOld(beat.error.message);
      if (beat.kind === "pin_mismatch") return this.endPinMismatch(beat.error);
      if (beat.kind === "ok") return this.beatAccepted();
      this.beatFailed(beat.error);
    } catch (error) {
      if (!this.running) return;
      // Nothing above should throw; if something does, treat it as one more failure rather than dying.
      this.log.error({ host_id: this.hostId, err: describe(error) }, "unexpected error in the heartbeat loop");
      this.beatFailed(error instanceof MusterError ? error : new MusterError(describe(error), { cause: error }));
    }
  }

  private async beat(): Promise<BeatOutcome> {
    const creds = this.creds!;
    let metrics: HeartbeatMetrics | undefined;
    try {
      metrics = await this.options.metrics?.();
    } catch (error) {
      this.log.debug({ err: describe(error) }, "metrics unavailable; heartbeat sent without them");
    }
    if (this.channelUp && this.channel?.heartbeat(metrics, new Date(this.clock.now()))) return { kind: "ok" };
    try {
      await this.request(false, (signal) =>
        this.authenticated.call(
          routes.heartbeat,
          { params: { id: creds.host_id }, body: metrics },
          { signal, timeoutMs: this.options.heartbeatTimeoutMs ?? 10_000 },
        ),
      );
      return { kind: "ok" };
    } catch (error) {
      if (error instanceof MusterApiError) {
        if (error.status === 401 || error.status === 403) return { kind: "unauthorized", error };
        if (error.status === 404) return { kind: "deleted", error };
        if (error.code === "upgrade_required") return { kind: "too_old", error };
      }
      const mismatch = pinErrorOf(error);
      if (mismatch) return { kind: "pin_mismatch", error: mismatch };
      return { kind: "failed", error: asMusterError(error) };
    }
  }

  private async refresh(reason: RefreshReason): Promise<RefreshOutcome> {
    const creds = this.creds!;
    let response;
    let key: HostKeyRequest | null;
    try {
      // A new key with every refresh: the certificate rotates with the tokens, and an old key is useless soon.
      key = await this.newKey();
      // A refresh token issued with a certificate is bound to its key: prove we hold it.
      const proof = creds.tls ? await refreshProof(creds.tls.private_key, creds.refresh_token) : undefined;
      response = await this.request(true, (signal) =>
        this.anonymous.call(
          routes.refreshHostCredentials,
          { body: { refresh_token: creds.refresh_token, ...(key ? { csr: key.csrPem } : {}), ...(proof ? { proof } : {}) } },
          { signal, timeoutMs: this.options.credentialTimeoutMs ?? 30_000 },
        ),
      );
    } catch (error) {
      if (!this.running) return { kind: "ended" };
      if (error instanceof MusterApiError && error.status === 404) {
        await this.endDeleted(error.message);
        return { kind: "ended" };
      }
      if (error instanceof MusterApiError && (error.status === 401 || error.status === 400)) {
        await this.endReregistration(`the control plane refused the refresh token (${error.message})`);
        return { kind: "ended" };
      }
      return { kind: "failed", error: asMusterError(error) };
    }
    // Saved even when stop() is waiting: the old refresh token is spent, only the new one works.
    const next = toStoredCredentials(response, creds.control_plane, this.clock.now(), key?.privateKeyPem, creds.tls, creds.server_certificate_pin);
    this.adopt(next);
    const saved = await this.save(next);
    this.log.info({ host_id: next.host_id, reason, token_expires_at: next.token_expires_at, saved }, "credentials refreshed");
    // The channel was opened with the old token and closes when it expires: open the next one with the new token now.
    if (this.channel && this.running) {
      this.hangUp();
      this.dial();
    }
    this.events.emit("credentialsRefreshed", { hostId: next.host_id, credentials: { ...next }, reason, saved });
    return { kind: "ok" };
  }

  /** Saves credentials; if the store refuses, keeps them in memory and tries again on every step. */
  private async save(credentials: StoredCredentials): Promise<boolean> {
    try {
      await this.options.credentials.save(credentials);
      this.unsaved = false;
      return true;
    } catch (error) {
      this.unsaved = true;
      this.log.error(
        { host_id: credentials.host_id, err: describe(error) },
        "cannot save the refreshed credentials; they live in memory only, and a restart now would need a new registration",
      );
      return false;
    }
  }

  private async saveAgain(): Promise<void> {
    if (this.creds && (await this.save(this.creds))) this.log.info({ host_id: this.hostId }, "refreshed credentials saved");
  }

  private beatAccepted(): void {
    const hostId = this.creds!.host_id;
    const now = this.clock.now();
    if (this.lost) {
      const downtimeMs = now - this.firstFailureAt;
      this.log.info({ host_id: hostId, failed_attempts: this.failures, downtime_ms: downtimeMs }, "control plane reachable again");
      this.events.emit("controlPlaneRestored", { hostId, failedAttempts: this.failures, downtimeMs });
    } else if (this.failures > 0) {
      this.log.info({ host_id: hostId, failed_attempts: this.failures }, "heartbeat accepted after failures");
    }
    this.failures = 0;
    this.lost = false;
    if (++this.accepted === 1) this.log.info({ host_id: hostId }, "first heartbeat accepted");
    this.log.debug({ host_id: hostId }, "heartbeat accepted");
    this.events.emit("heartbeat", { hostId, at: new Date(now) });
    this.schedule(heartbeatDelayMs(this.creds!.heartbeat_interval_s, this.random));
  }

  private beatFailed(error: MusterError): void {
    const hostId = this.creds!.host_id;
    this.failures++;
    if (this.failures === 1) this.firstFailureAt = this.clock.now();
    const retryInMs = retryDelayMs(this.failures, this.random, retryAfterOf(error));
    this.log.warn(
      { host_id: hostId, err: error.message, consecutive_failures: this.failures, retry_in_ms: Math.round(retryInMs) },
      "heartbeat failed",
    );
    this.events.emit("heartbeatFailed", { hostId, error, consecutiveFailures: this.failures, retryInMs });
    if (!this.lost && this.failures >= (this.options.lostAfterFailures ?? 3)) {
      this.lost = true;
      this.log.error(
        { host_id: hostId, consecutive_failures: this.failures, err: error.message },
        "control plane unreachable; still retrying",
      );
      this.events.emit("controlPlaneLost", { hostId, error, consecutiveFailures: this.failures });
    }
    this.schedule(retryInMs);
  }

  private async endReregistration(detail: string): Promise<void> {
    const hostId = this.creds!.host_id;
    const message = `${detail}: the host must be registered again with a new registration token (an operator issues one: POST /v1/hosts/${hostId}/token)`;
    this.log.error({ host_id: hostId }, message);
    this.events.emit("reregistrationRequired", { hostId, message });
    this.finish({ reason: "reregistration_required", hostId, message });
  }

  private async endDeleted(detail: string): Promise<void> {
    const hostId = this.creds!.host_id;
    let message = `the control plane no longer knows host ${hostId} (${detail}): it was deleted; the credentials were removed`;
    try {
      await this.options.credentials.remove();
    } catch (removeError) {
      message = `the control plane no longer knows host ${hostId}: it was deleted, but the credentials could not be removed (${describe(removeError)})`;
    }
    this.creds = null;
    this.log.error({ host_id: hostId }, message);
    this.events.emit("hostDeleted", { hostId, message });
    this.finish({ reason: "host_deleted", hostId, message });
  }

  private endTooOld(message: string): void {
    const hostId = this.creds!.host_id;
    this.log.error({ host_id: hostId }, message);
    this.finish({ reason: "protocol_rejected", hostId, message });
  }

  private endPinMismatch(error: CertificatePinError): void {
    const hostId = this.creds!.host_id;
    const message =
      `the control plane at ${this.baseUrl} presented a certificate with key pin ${error.presented}, not the pinned ${error.expected}; ` +
      `refusing it (it may not be the control plane). If its key was replaced on purpose, re-pin: run muster-agent once with --repin, ` +
      `or call HostAgent.repin() before start()`;
    this.log.error({ host_id: hostId, expected: error.expected, presented: error.presented }, message);
    this.finish({ reason: "certificate_pin_mismatch", hostId, message });
  }

  // ---- the channel ------------------------------------------------------------------------

  private dial(): void {
    this.redialTimer = null;
    if (!this.running || !this.creds) return;
    const hostId = this.creds.host_id;
    const channel: AgentChannel = new AgentChannel(
      this.baseUrl,
      hostId,
      this.creds.token,
      this.options.agentVersion ?? "unknown",
      {
        welcome: () => {
          if (this.channel !== channel) return;
          this.channelUp = true;
          this.channelFailures = 0;
          this.commands.channelOpened();
          this.log.info({ host_id: hostId }, "agent channel open; heartbeats and commands travel over it");
          this.events.emit("channelOpen", { hostId });
        },
        command: (command) => void this.commands.run(command, (id) => channel.ack(id)),
        resultAck: (id) => this.commands.acknowledged(id),
        closed: ({ code, reason, rejected, pinMismatch }) => {
          if (this.channel !== channel) return;
          const wasUp = this.channelUp;
          this.channel = null;
          this.channelUp = false;
          if (!this.running) return;
          if (pinMismatch) return this.endPinMismatch(pinMismatch);
          // The control plane closes with 4404 only once the host is deleted: that is the deletion itself, no beat needed.
          if (code === CHANNEL_CLOSE.hostDeleted) return void this.endDeleted(`channel closed ${code}: ${reason}`);
          if (code === CHANNEL_CLOSE.protocolTooOld) {
            const help = rejected ? `${rejected.message}` : "the control plane refused this agent's protocol version: upgrade muster-agent";
            return this.endTooOld(help);
          }
          const retryInMs = backoffDelayMs(++this.channelFailures, this.random);
          const fields = { host_id: hostId, code, reason, retry_in_ms: Math.round(retryInMs) };
          if (wasUp) this.log.warn(fields, "agent channel dropped; heartbeats fall back to HTTP; redialing");
          else this.log.debug(fields, "agent channel could not open; redialing");
          this.events.emit("channelClosed", { hostId, code, reason, retryInMs });
          this.redialTimer = this.clock.setTimeout(() => this.dial(), retryInMs);
        },
      },
      this.options.userAgent,
      this.tls?.options,
    );
    this.channel = channel;
  }

  private hangUp(): void {
    if (this.redialTimer !== null) this.clock.clearTimeout(this.redialTimer);
    this.redialTimer = null;
    const channel = this.channel;
    this.channel = null;
    this.channelUp = false;
    channel?.close();
  }

  /** The built-in `refresh_credentials`: a refresh by the next step of the loop, never alongside another. */
  private async refreshOnCommand(): Promise<unknown> {
    const outcome = await new Promise<RefreshOutcome>((resolve) => {
      this.refreshWaiters.push(resolve);
      if (this.step === null) this.schedule(0);
    });
    if (outcome.kind === "failed") throw outcome.error;
    if (outcome.kind === "ended") throw new MusterError("the agent stopped before the credentials were refreshed");
    return { token_expires_at: this.creds?.token_expires_at ?? null };
  }

  private finish(exit: AgentExit): void {
    if (this.status === "stopped") return;
    this.status = "stopped";
    this.clearTimer();
    this.hangUp();
    this.commands.stop();
    for (const waiter of this.refreshWaiters.splice(0)) waiter({ kind: "ended" });
    for (const request of this.inFlight) request.controller.abort(stopReason());
    this.events.emit("stopped", exit);
    this.resolveDone(exit);
  }

  private async request<T>(critical: boolean, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const promise = send(controller.signal);
    const entry: InFlight = { controller, critical, settled: promise.then(ignore, ignore) };
    this.inFlight.add(entry);
    try {
      return await promise;
    } finally {
      this.inFlight.delete(entry);
    }
  }
}

/** The agent process's memory, for `ping`: what an operator (and the soak benchmark) watches for growth. */
function processMemory(): { rss_bytes: number; heap_used_bytes: number } {
  const { rss, heapUsed } = process.memoryUsage();
  return { rss_bytes: rss, heap_used_bytes: heapUsed };
}

function registrationMessage(error: unknown, baseUrl: string): string {
  if (error instanceof MusterApiError) {
    const what = error.status === 401 ? "refused the registration token" : `refused the registration (HTTP ${error.status})`;
    return `the control plane at ${baseUrl} ${what}: ${error.message}. Nothing was saved.`;
  }
  if (error instanceof MusterConnectionError) return `${error.message}. Nothing was saved.`;
  return `registration did not complete (${describe(error)}). Nothing was saved.`;
}

function retryAfterOf(error: unknown): number | null {
  return error instanceof MusterApiError ? error.retryAfterS : null;
}

/**
 * Whether a registration that failed this way may be sent again: the network
 * failed or timed out (the answer may have been lost: the control plane gives
 * the same machine its credentials again), or the control plane asked to wait
 * (429, 409 while an earlier attempt is in progress, 503) or failed (5xx).
 */
function registrationRetryable(error: unknown): boolean {
  if (error instanceof MusterConnectionError) return true;
  return error instanceof MusterApiError && (error.status === 409 || error.status === 429 || error.status >= 500);
}

function asMusterError(error: unknown): MusterError {
  return error instanceof MusterError ? error : new MusterConnectionError(describe(error), false, { cause: error });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function stopReason(): Error {
  const error = new Error("the agent is stopping");
  error.name = "AbortError";
  return error;
}

function ignore(): void {}
