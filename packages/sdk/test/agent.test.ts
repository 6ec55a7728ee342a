import "reflect-metadata";
import { createHash, createPrivateKey, createPublicKey, verify } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import { backoffDelayMs, BACKOFF_MAX_MS, BACKOFF_MIN_MS, heartbeatDelayMs } from "../src/agent/backoff.js";
import { CredentialsFileError, MemoryCredentialStore, type StoredCredentials } from "../src/agent/credentials.js";
import { HostAgent, RegistrationError } from "../src/agent/host-agent.js";
import type { HostAgentEvents, HostAgentOptions } from "../src/agent/types.js";
import type { HostSpecs } from "../src/agent/specs.js";
import { FakeClock, FakeControlPlane, HOST_ID, sequence } from "./agent-fakes.js";

const SPECS: HostSpecs = { arch: "x86_64", cpu_cores: 8, memory_mb: 16384, disk_gb: 200, hostname: "worker-1", os: "Debian 12" };

type Recorded = { [K in keyof HostAgentEvents]: { event: K; payload: HostAgentEvents[K] } }[keyof HostAgentEvents];
const EVENTS: (keyof HostAgentEvents)[] = [
  "registered", "started", "heartbeat", "credentialsRefreshed", "heartbeatFailed", "controlPlaneLost",
  "controlPlaneRestored", "reregistrationRequired", "hostDeleted", "clockSkew", "stopped",
];

function setup(options: Partial<HostAgentOptions> & { saved?: "issue"; tokenTtlS?: number; intervalS?: number } = {}) {
  const clock = new FakeClock();
  const cp = new FakeControlPlane(clock);
  if (options.tokenTtlS) cp.tokenTtlS = options.tokenTtlS;
  if (options.intervalS) cp.intervalS = options.intervalS;
  const store = new MemoryCredentialStore(options.saved ? cp.issue() : null);
  const agent = new HostAgent({
    controlPlane: cp.url,
    credentials: store,
    clock,
    random: () => 0.5,
    fetch: cp.fetch,
    specs: () => SPECS,
    agentVersion: "9.9.9",
    // The fake control plane speaks HTTP only; the channel is tested against a real one (agent-channel.test.ts).
    channel: false,
    // The certificate flow has its own tests below; the rest are about heartbeats and tokens.
    certificate: false,
    ...options,
  });
  const events: Recorded[] = [];
  for (const event of EVENTS) agent.on(event, (payload) => void events.push({ event, payload } as Recorded));
  const named = <K extends keyof HostAgentEvents>(event: K) =>
    events.filter((e) => e.event === event).map((e) => e.payload as HostAgentEvents[K]);
  /** Runs timers until `count` more calls reached the control plane (bounded). */
  const runUntilCalls = async (count: number) => {
    const target = cp.calls.length + count;
    for (let i = 0; i < 200 && cp.calls.length < target; i++) await clock.next();
    expect(cp.calls.length).toBeGreaterThanOrEqual(target);
  };
  return { clock, cp, store, agent, events, named, runUntilCalls };
}

describe("HostAgent registration", () => {
  it("registers with the machine's specs, address and agent version, and saves what it got", async () => {
    const { agent, cp, store, named } = setup();
    const saved = await agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" });

    expect(cp.calls).toHaveLength(1);
    expect(cp.calls[0]!.body).toEqual({ ...SPECS, token: "reg-token-1", address: "10.0.0.7:7070", agent_version: "9.9.9" });
    expect(store.credentials).toEqual(saved);
    expect(saved).toMatchObject({ version: 1, host_id: HOST_ID, control_plane: cp.url, heartbeat_interval_s: 30 });
    expect(named("registered")).toEqual([expect.objectContaining({ hostId: HOST_ID })]);
  });

  it("writes nothing when the token is refused, and keeps the credentials saved before", async () => {
    const { agent, store, cp } = setup({ saved: "issue" });
    const before = structuredClone(store.credentials);
    const error = await agent.register({ token: "used-or-unknown", address: "10.0.0.7:7070" }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RegistrationError);
    expect((error as Error).message).toMatch(/refused the registration token: .*Nothing was saved/);
    expect(store.credentials).toEqual(before);
    expect(cp.callsTo("register")).toHaveLength(1);
    expect(cp.callsTo("heartbeat")).toHaveLength(0);
  });

  it("retries a registration that failed or was asked to wait, sending the very same body (the same CSR) each time", async () => {
    const { agent, cp, clock, store } = setup({ certificate: true });
    cp.replies.register.push("down", { status: 503 }, { status: 429, retryAfter: 20 }, { status: 409, retryAfter: 1 });
    let settled = false;
    const registered = agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" }).finally(() => (settled = true));
    const delays: number[] = [];
    while (!settled) delays.push(await clock.next(() => settled));
    const saved = await registered;

    const attempts = cp.callsTo("register");
    expect(attempts).toHaveLength(5);
    expect(attempts[0]!.body?.csr).toMatch(/BEGIN CERTIFICATE REQUEST/);
    for (const attempt of attempts) expect(attempt.body).toEqual(attempts[0]!.body);
    expect(delays[2]).toBeGreaterThanOrEqual(20_000);
    expect(store.credentials).toEqual(saved);
    expect(saved.tls?.certificate).toMatch(/fake-1/);
  });

  it("gives up after four minutes of failures, writing nothing", async () => {
    const { agent, store, cp, clock } = setup();
    cp.replies.register.push(...Array.from({ length: 50 }, () => "down" as const));
    let settled = false;
    const error = agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" }).then(
      () => null,
      (e: unknown) => e,
    ).finally(() => (settled = true));
    while (!settled) await clock.next(() => settled);

    expect(await error).toBeInstanceOf(RegistrationError);
    expect(((await error) as Error).message).toMatch(/cannot reach the Muster control plane.*ECONNREFUSED.*Nothing was saved/);
    const attempts = cp.callsTo("register");
    expect(attempts.length).toBeGreaterThan(3);
    expect(attempts.at(-1)!.at - attempts[0]!.at).toBeLessThanOrEqual(4 * 60_000);
    expect(store.credentials).toBeNull();
  });

  it("a registration replaces saved credentials, which are never used", async () => {
    const { agent, store, cp, clock } = setup({ saved: "issue" });
    const old = store.credentials!;
    cp.registrationTokens.add("reg-token-2");
    const fresh = await agent.register({ token: "reg-token-2", address: "10.0.0.8:7070" });
    await agent.start();
    await clock.next();
    await clock.waitForTimer();

    expect(store.credentials!.token).toBe(fresh.token);
    expect(fresh.token).not.toBe(old.token);
    expect(cp.callsTo("heartbeat").map((call) => call.token)).toEqual([fresh.token]);
    expect(cp.calls.some((call) => call.token === old.token || call.body?.refresh_token === old.refresh_token)).toBe(false);
  });

  it("start() without saved credentials says to register first", async () => {
    const { agent } = setup();
    const error = await agent.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialsFileError);
    expect(error).toMatchObject({ problem: "missing" });
    expect((error as Error).message).toMatch(/no saved credentials in memory: register this host first/);
  });
});

describe("HostAgent heartbeats", () => {
  it("beats at once on start, then every interval the control plane gave, shortened by jitter", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue", intervalS: 7, random: sequence(0, 0.5, 0.9999) });
    await agent.start();

    expect(await clock.next()).toBe(0);
    const delays = [await clock.next(), await clock.next(), await clock.next()];
    await clock.waitForTimer();

    expect(delays).toEqual([5600, 6300, expect.closeTo(7000, 0)]);
    expect(cp.callsTo("heartbeat")).toHaveLength(4);
    expect(named("heartbeat")).toHaveLength(4);
    expect(named("started")).toEqual([{ hostId: HOST_ID, heartbeatIntervalS: 7 }]);
  });

  it("keeps every heartbeat delay within [0.8, 1] × the interval", () => {
    for (let i = 0; i < 1_000; i++) {
      const delay = heartbeatDelayMs(30, Math.random);
      expect(delay).toBeGreaterThanOrEqual(24_000);
      expect(delay).toBeLessThanOrEqual(30_000);
    }
  });

  it("sends the metrics the daemon samples, and beats without them when sampling fails", async () => {
    let calls = 0;
    const metrics = () => {
      if (++calls === 2) throw new Error("no /proc");
      return { cpu_percent: 12.5, uptime_s: 100 };
    };
    const { agent, cp, clock } = setup({ saved: "issue", metrics });
    await agent.start();
    await clock.next();
    await clock.next();
    await clock.waitForTimer();

    expect(cp.callsTo("heartbeat").map((call) => call.body)).toEqual([{ cpu_percent: 12.5, uptime_s: 100 }, undefined]);
  });

  it("a listener that throws does not stop the heartbeat", async () => {
    const { agent, cp, clock } = setup({ saved: "issue" });
    agent.on("heartbeat", () => {
      throw new Error("daemon bug");
    });
    agent.on("heartbeat", async () => Promise.reject(new Error("async daemon bug")));
    await agent.start();
    await clock.next();
    await clock.next();
    await clock.waitForTimer();
    expect(cp.callsTo("heartbeat")).toHaveLength(2);
    expect(agent.state).toBe("running");
  });
});

describe("HostAgent credentials refresh", () => {
  it("refreshes once 80% of the token's lifetime has passed, before it expires, and beats with the new token", async () => {
    const { agent, cp, clock, store, named } = setup({ saved: "issue", tokenTtlS: 100, intervalS: 10 });
    const issuedAt = clock.now();
    const first = store.credentials!;
    await agent.start();
    await clock.next();
    while (cp.callsTo("refresh").length === 0) await clock.next();

    const refreshAt = cp.callsTo("refresh")[0]!.at - issuedAt;
    expect(refreshAt).toBeGreaterThanOrEqual(80_000);
    expect(refreshAt).toBeLessThan(90_000);
    expect(cp.callsTo("refresh")[0]!.body).toEqual({ refresh_token: first.refresh_token });
    expect(store.credentials!.token).not.toBe(first.token);
    expect(named("credentialsRefreshed")).toEqual([
      { hostId: HOST_ID, credentials: store.credentials, reason: "proactive", saved: true },
    ]);
    expect(cp.callsTo("heartbeat").at(-1)!.token).toBe(store.credentials!.token);
    expect(named("heartbeatFailed")).toHaveLength(0);
  });

  it("refreshes before the first beat when restarted past the refresh point", async () => {
    const { agent, cp, clock } = setup({ saved: "issue", tokenTtlS: 100 });
    clock.jump(90_000);
    await agent.start();
    await clock.next();
    await clock.waitForTimer();
    expect(cp.calls.map((call) => call.route)).toEqual(["refresh", "heartbeat"]);
  });

  it("follows a new heartbeat interval from a refresh", async () => {
    const { agent, cp, clock } = setup({ saved: "issue", tokenTtlS: 100, intervalS: 10, random: () => 0 });
    await agent.start();
    await clock.next();
    cp.intervalS = 25;
    while (cp.callsTo("refresh").length === 0) await clock.next();
    expect(await clock.next()).toBe(20_000);
  });

  it("keeps beating with the current token when a proactive refresh fails, and retries the refresh later", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue", tokenTtlS: 100, intervalS: 10 });
    await agent.start();
    await clock.next();
    cp.replies.refresh.push("down");
    while (cp.callsTo("refresh").length < 2) await clock.next();
    await clock.waitForTimer();

    const [failed, retried] = cp.callsTo("refresh");
    expect(retried!.at - failed!.at).toBeGreaterThanOrEqual(BACKOFF_MIN_MS);
    const beatsBetween = cp.callsTo("heartbeat").filter((call) => call.at >= failed!.at && call.at < retried!.at);
    expect(beatsBetween.length).toBeGreaterThanOrEqual(1);
    expect(named("heartbeatFailed")).toHaveLength(0);
    expect(named("credentialsRefreshed")).toHaveLength(1);
  });

  it.each([
    ["proactive", { tokenTtlS: 1000, intervalS: 10 }],
    ["after a 401", { intervalS: 10 }],
  ])("waits out a 429's Retry-After before refreshing again (%s)", async (when, options) => {
    const { agent, cp, clock } = setup({ saved: "issue", ...options });
    if (when === "after a 401") cp.replies.heartbeat.push({ status: 401 });
    cp.replies.refresh.push({ status: 429, retryAfter: 45 });
    await agent.start();
    while (cp.callsTo("refresh").length < 2) await clock.next();

    const [limited, retried] = cp.callsTo("refresh");
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(45_000);
    expect(agent.state).toBe("running");
  });

  it("on 401 refreshes and retries the heartbeat at once", async () => {
    const { agent, cp, clock, store, named } = setup({ saved: "issue" });
    const first = store.credentials!;
    cp.replies.heartbeat.push({ status: 401 });
    await agent.start();
    await clock.next();
    await clock.waitForTimer();

    expect(cp.calls.map((call) => `${call.route}@${call.at}`)).toEqual([
      `heartbeat@${clock.now()}`,
      `refresh@${clock.now()}`,
      `heartbeat@${clock.now()}`,
    ]);
    expect(cp.calls[2]!.token).not.toBe(first.token);
    expect(named("credentialsRefreshed")[0]).toMatchObject({ reason: "unauthorized", saved: true });
    expect(named("heartbeat")).toHaveLength(1);
    expect(agent.state).toBe("running");
  });

  it("stops and says to re-register when the refresh is refused", async () => {
    const { agent, cp, clock, named, store } = setup({ saved: "issue" });
    cp.revokeAll();
    await agent.start();
    await clock.next(() => agent.state === "stopped");
    const exit = await agent.done;

    expect(exit).toMatchObject({ reason: "reregistration_required", hostId: HOST_ID });
    expect(exit.reason === "reregistration_required" && exit.message).toMatch(/refused the refresh token.*registered again with a new registration token/);
    expect(named("reregistrationRequired")).toHaveLength(1);
    expect(named("stopped")).toEqual([exit]);
    expect(cp.calls.map((call) => call.route)).toEqual(["heartbeat", "refresh"]);
    expect(clock.pendingTimers).toBe(0);
    expect(store.credentials).not.toBeNull();
    expect(agent.state).toBe("stopped");
  });

  it("stops and says to re-register when fresh credentials are refused too", async () => {
    const { agent, cp, clock } = setup({ saved: "issue" });
    cp.replies.heartbeat.push({ status: 401 }, { status: 401 });
    await agent.start();
    await clock.next(() => agent.state === "stopped");
    expect(await agent.done).toMatchObject({ reason: "reregistration_required" });
    expect(cp.calls.map((call) => call.route)).toEqual(["heartbeat", "refresh", "heartbeat"]);
  });
});

describe("HostAgent back from a long offline spell", () => {
  it("longer than its host token's lifetime: refreshes with its refresh token, then beats", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue" });
    clock.jump((cp.tokenTtlS + 3 * 86_400) * 1000);
    await agent.start();
    await clock.next();
    await clock.waitForTimer();

    expect(cp.calls.map((call) => call.route)).toEqual(["refresh", "heartbeat"]);
    expect(named("heartbeat")).toHaveLength(1);
    expect(agent.state).toBe("running");
  });

  it("longer than its refresh token's lifetime: stops and says to register again with a new token", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue" });
    clock.jump((cp.refreshTtlS + 60) * 1000);
    await agent.start();
    await clock.next(() => agent.state === "stopped");
    const exit = await agent.done;

    expect(exit).toMatchObject({ reason: "reregistration_required", hostId: HOST_ID });
    const message = (exit as { message: string }).message;
    expect(message).toMatch(/refused the refresh token \(refresh token is invalid, expired or revoked.*\): the host must be registered again/);
    expect(message).toContain(`POST /v1/hosts/${HOST_ID}/token`);
    expect(named("reregistrationRequired")).toEqual([{ hostId: HOST_ID, message }]);
  });
});

describe("HostAgent when the host is deleted", () => {
  it("on 404 removes the credentials, reports the deletion and stops", async () => {
    const { agent, cp, clock, named, store } = setup({ saved: "issue" });
    cp.replies.heartbeat.push({ status: 404, message: "host not found" });
    await agent.start();
    await clock.next(() => agent.state === "stopped");
    const exit = await agent.done;

    expect(exit).toMatchObject({ reason: "host_deleted", hostId: HOST_ID });
    expect(exit.reason === "host_deleted" && exit.message).toMatch(/deleted; the credentials were removed/);
    expect(store.credentials).toBeNull();
    expect(named("hostDeleted")).toEqual([{ hostId: HOST_ID, message: (exit as { message: string }).message }]);
    expect(clock.pendingTimers).toBe(0);
    expect(agent.credentials).toBeNull();
  });

  it("treats a 404 from the refresh (its token expired while the host was deleted) the same way", async () => {
    const { agent, cp, clock, named, store } = setup({ saved: "issue" });
    cp.replies.heartbeat.push({ status: 401 });
    cp.replies.refresh.push({ status: 404, message: "the host was deleted; its agent should remove its credentials" });
    await agent.start();
    await clock.next(() => agent.state === "stopped");
    const exit = await agent.done;

    expect(exit).toMatchObject({ reason: "host_deleted", hostId: HOST_ID });
    expect(cp.calls.map((call) => call.route)).toEqual(["heartbeat", "refresh"]);
    expect(store.credentials).toBeNull();
    expect(named("hostDeleted")).toHaveLength(1);
    expect(named("reregistrationRequired")).toHaveLength(0);
  });
});

describe("HostAgent network failures", () => {
  it("reports the control plane lost after 3 failures in a row, keeps retrying, and reports the recovery", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue" });
    await agent.start();
    await clock.next();
    cp.replies.heartbeat.push("down", "down", "down", "down", "down");

    const lostAfter: number[] = [];
    const delays: number[] = [];
    for (let beat = 0; beat < 6; beat++) {
      delays.push(await clock.next());
      await clock.waitForTimer();
      lostAfter.push(named("controlPlaneLost").length);
    }

    expect(lostAfter).toEqual([0, 0, 1, 1, 1, 1]);
    expect(named("controlPlaneLost")[0]).toMatchObject({ hostId: HOST_ID, consecutiveFailures: 3 });
    expect(named("heartbeatFailed").map((e) => e.consecutiveFailures)).toEqual([1, 2, 3, 4, 5]);
    const restored = named("controlPlaneRestored");
    expect(restored).toHaveLength(1);
    expect(restored[0]!.failedAttempts).toBe(5);
    // Downtime runs from the first failure to the beat that got through: the five backoff delays.
    expect(restored[0]!.downtimeMs).toBe(delays.slice(1).reduce((a, b) => a + b, 0));
    expect(agent.state).toBe("running");
  });

  it("two failures then a success report neither lost nor restored", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue" });
    cp.replies.heartbeat.push("down", { status: 503 });
    await agent.start();
    for (let i = 0; i < 3; i++) await clock.next();
    await clock.waitForTimer();
    expect(named("heartbeatFailed")).toHaveLength(2);
    expect(named("controlPlaneLost")).toHaveLength(0);
    expect(named("controlPlaneRestored")).toHaveLength(0);
    expect(named("heartbeat")).toHaveLength(1);
  });

  it("backs off 1 s → 60 s exponentially, the jitter within [b/2, b]", async () => {
    const low = setup({ saved: "issue", random: () => 0 });
    const high = setup({ saved: "issue", random: () => 0.999999 });
    const observed: number[][] = [];
    for (const run of [low, high]) {
      for (let i = 0; i < 9; i++) run.cp.replies.heartbeat.push("down");
      await run.agent.start();
      await run.clock.next();
      const delays: number[] = [];
      for (let i = 0; i < 9; i++) delays.push(Math.round(await run.clock.next()));
      observed.push(delays);
    }
    expect(observed[0]).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    expect(observed[1]).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]);
  });

  it("never backs off less than 1 s or more than 60 s, and the jitter spreads the delays", () => {
    for (let failures = 1; failures <= 40; failures++) {
      const ceiling = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** failures);
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const delay = backoffDelayMs(failures, Math.random);
        expect(delay).toBeGreaterThanOrEqual(Math.max(BACKOFF_MIN_MS, ceiling / 2));
        expect(delay).toBeLessThanOrEqual(ceiling);
        seen.add(Math.round(delay));
      }
      expect(seen.size).toBeGreaterThan(50);
    }
  });

  it("waits at least as long as a 503's Retry-After", async () => {
    const { agent, cp, clock } = setup({ saved: "issue", random: () => 0 });
    await agent.start();
    await clock.next();
    cp.replies.heartbeat.push({ status: 503, retryAfter: 17 });
    await clock.next();
    expect(await clock.next()).toBe(17_000);
  });
});

describe("HostAgent stop", () => {
  it("aborts a heartbeat in flight, leaves no timer, and reports a clean stop", async () => {
    const { agent, cp, clock, named } = setup({ saved: "issue" });
    cp.replies.heartbeat.push("hang");
    await agent.start();
    await clock.next(() => cp.callsTo("heartbeat").length === 1);
    expect(cp.callsTo("heartbeat")).toHaveLength(1);

    await agent.stop();
    expect(await agent.done).toEqual({ reason: "stopped" });
    expect(named("stopped")).toEqual([{ reason: "stopped" }]);
    expect(named("heartbeatFailed")).toHaveLength(0);
    expect(clock.pendingTimers).toBe(0);
    expect(agent.state).toBe("stopped");
  });

  it("lets a refresh in flight finish and saves its credentials, so the spent refresh token is not all that is left", async () => {
    const { cp, clock, store } = setup({ saved: "issue" });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let refreshSent = false;
    const gated = new HostAgent({
      channel: false,
      controlPlane: cp.url,
      credentials: store,
      clock,
      fetch: async (input, init) => {
        if (String(input).endsWith("/auth/refresh")) {
          refreshSent = true;
          // Like a real fetch, give up as soon as the request is aborted.
          const signal = init!.signal!;
          await Promise.race([gate, new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }))]);
        }
        return cp.fetch(input, init);
      },
    });
    const spent = store.credentials!.refresh_token;
    cp.replies.heartbeat.push({ status: 401 });
    await gated.start();
    await clock.next(() => refreshSent);

    const stopping = gated.stop();
    release();
    await stopping;
    expect(store.credentials!.refresh_token).not.toBe(spent);
    expect(cp.callsTo("heartbeat")).toHaveLength(1);
  });

  it("gives up on a refresh that outlasts the grace period", async () => {
    const { agent, cp, clock, store } = setup({ saved: "issue", stopGraceMs: 500 });
    const before = structuredClone(store.credentials);
    cp.replies.heartbeat.push({ status: 401 });
    cp.replies.refresh.push("hang");
    await agent.start();
    await clock.next(() => cp.callsTo("refresh").length === 1);

    const stopping = agent.stop();
    expect(await clock.next(() => agent.state === "stopped")).toBe(500);
    expect(await stopping).toEqual({ reason: "stopped" });
    expect(store.credentials).toEqual(before);
  });

  it("does not start again once stopped", async () => {
    const { agent } = setup({ saved: "issue" });
    await agent.stop();
    await expect(agent.start()).rejects.toThrow(/stopped/);
  });
});

describe("HostAgent with a store that refuses to save", () => {
  it("keeps refreshed credentials in memory, says they are unsaved, and saves them on a later step", async () => {
    const { cp, clock } = setup();
    let refuse = true;
    const store = new (class extends MemoryCredentialStore {
      override async save(credentials: StoredCredentials) {
        if (refuse) throw new CredentialsFileError("unwritable", "disk full");
        return super.save(credentials);
      }
    })(cp.issue());
    const agent = new HostAgent({ controlPlane: cp.url, credentials: store, clock, fetch: cp.fetch, channel: false, certificate: false });
    const refreshed: boolean[] = [];
    agent.on("credentialsRefreshed", (event) => void refreshed.push(event.saved));
    cp.replies.heartbeat.push({ status: 401 });
    await agent.start();
    await clock.next();
    await clock.waitForTimer();
    expect(refreshed).toEqual([false]);
    expect(cp.callsTo("heartbeat").at(-1)!.token).toBe(agent.credentials!.token);
    expect(store.credentials!.token).not.toBe(agent.credentials!.token);

    refuse = false;
    await clock.next();
    await clock.waitForTimer();
    expect(store.credentials!.token).toBe(agent.credentials!.token);
  });
});

describe("HostAgent host certificate", () => {
  const privateKeyOf = (pem: string) => createPrivateKey(pem);
  const publicKeyOfCsr = (csrPem: string) => Buffer.from(new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData);
  const spkiOf = (privatePem: string) => createPublicKey(privateKeyOf(privatePem)).export({ type: "spki", format: "der" });
  /** Checks an ES256 refresh proof as the control plane does: signature by the key, typ, and the token's thumbprint. */
  const proofHolds = (proof: string, privatePem: string, refreshToken: string) => {
    const [header, payload, signature] = proof.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as { ath?: string };
    const typ = (JSON.parse(Buffer.from(header!, "base64url").toString("utf8")) as { typ?: string }).typ;
    const signed = verify("sha256", Buffer.from(`${header}.${payload}`), { key: createPublicKey(privateKeyOf(privatePem)), dsaEncoding: "ieee-p1363" }, Buffer.from(signature!, "base64url"));
    return signed && typ === "muster-refresh-proof+jws" && claims.ath === createHash("sha256").update(refreshToken).digest("base64url");
  };

  it("makes its key here, sends only a CSR for it, and keeps key and certificate with the credentials", async () => {
    const { agent, cp, store } = setup({ certificate: true });
    const saved = await agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" });

    const csr = cp.calls[0]!.body!.csr as string;
    expect(csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    expect(saved.tls).toMatchObject({ certificate: expect.stringContaining("fake-"), ca_certificate: expect.stringContaining("fake-ca") });
    expect(privateKeyOf(saved.tls!.private_key).asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(publicKeyOfCsr(csr)).toEqual(spkiOf(saved.tls!.private_key));
    expect(store.credentials!.tls).toEqual(saved.tls);
    expect(saved.address).toBe("10.0.0.7:7070");
  });

  it("rotates the key with every refresh, and no request ever carries a private key", async () => {
    const { agent, cp, clock, store, named } = setup({ certificate: true, tokenTtlS: 100, intervalS: 10 });
    const first = await agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" });
    await agent.start();
    for (let i = 0; i < 200 && cp.callsTo("refresh").length < 2; i++) await clock.next();
    await agent.stop();

    const refreshes = cp.callsTo("refresh");
    expect(refreshes).toHaveLength(2);
    const keys = [first.tls!.private_key, ...named("credentialsRefreshed").map((event) => event.credentials.tls!.private_key)];
    expect(new Set(keys).size).toBe(3);
    expect(publicKeyOfCsr(refreshes[1]!.body!.csr as string)).toEqual(spkiOf(store.credentials!.tls!.private_key));
    // Each refresh proves the key its token was issued with (the one before), over that very token.
    refreshes.forEach((call, i) => expect(proofHolds(call.body!.proof as string, keys[i]!, call.body!.refresh_token as string)).toBe(true));
    expect(proofHolds(refreshes[1]!.body!.proof as string, keys[0]!, refreshes[1]!.body!.refresh_token as string)).toBe(false);
    const sent = JSON.stringify(cp.calls);
    for (const key of keys) {
      expect(sent).not.toContain(key);
      expect(sent).not.toContain(key.split("\n")[1]);
    }
    expect(sent).not.toMatch(/PRIVATE KEY/);
  });

  it("keeps the certificate it has when a refresh answer certifies nothing (an older control plane)", async () => {
    const { agent, cp, clock, store } = setup({ certificate: true, tokenTtlS: 100, intervalS: 10 });
    const first = await agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" });
    await agent.start();
    cp.certify = false;
    for (let i = 0; i < 200 && cp.callsTo("refresh").length < 1; i++) await clock.next();
    await agent.stop();
    expect(store.credentials!.refresh_token).not.toBe(first.refresh_token);
    expect(store.credentials!.tls).toEqual(first.tls);
  });
});

describe("HostAgent and clocks", () => {
  it("sends this host's clock on every call, for the control plane to record the skew", async () => {
    const { agent, cp, clock } = setup();
    await agent.register({ token: "reg-token-1", address: "10.0.0.7:7070" });
    await agent.start();
    await clock.next();
    clock.jump(1234);
    await clock.next();
    expect(cp.calls.map((call) => call.route)).toEqual(["register", "heartbeat", "heartbeat"]);
    for (const call of cp.calls) expect(call.agentClock).toBe(new Date(call.at).toISOString());
  });

  it("warns once when its clock strays beyond the bound from the control plane's, says which way, and says when it is back", async () => {
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (_: object, message: string) => void warnings.push(message), error() {} };
    const { agent, cp, clock, named } = setup({ saved: "issue", logger, maxClockSkewMs: 30_000 });
    cp.clockAheadMs = 20_000;
    await agent.start();
    await clock.next();
    expect(named("clockSkew")).toEqual([]);

    cp.clockAheadMs = 90_000;
    await clock.next();
    await clock.next();
    expect(named("clockSkew")).toEqual([{ hostId: HOST_ID, skewMs: -90_500, boundMs: 30_000, over: true }]);
    expect(warnings.filter((message) => message.includes("clock"))).toEqual([
      expect.stringMatching(/this host's clock is 91 s behind the control plane's \(bound 30 s\).*sync it with NTP/),
    ]);

    cp.clockAheadMs = -45_000;
    await clock.next();
    expect(named("clockSkew")).toHaveLength(1);
    cp.clockAheadMs = 0;
    await clock.next();
    expect(named("clockSkew").at(-1)).toEqual({ hostId: HOST_ID, skewMs: -500, boundMs: 30_000, over: false });
    await agent.stop();
  });
});
