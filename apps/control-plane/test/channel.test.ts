import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANNEL_CLOSE, PROTOCOL_VERSION } from "@muster/contract";
import { startTestApp, type TestApp } from "./support/app.js";
import { eventually, listen, startTwoPlanes, TestChannel, type TwoPlanes } from "./support/channel.js";
import { Factories, machineSpecs } from "./support/factories.js";

/**
 * The agent channel on real sockets: the WebSocket upgrade, the hello
 * handshake, heartbeats over the channel, and one channel per host across two
 * control planes sharing the stores.
 */
let a: TestApp;
let b: TestApp;
let urlA: string;
let urlB: string;
let f: Factories;
let planes: TwoPlanes | undefined;

beforeAll(async () => {
  planes = await startTwoPlanes({ channelHelloTimeoutMs: 300 });
  ({ a, b, urlA, urlB } = planes);
  f = new Factories(a);
});

afterAll(() => planes?.close());

async function metric(app: TestApp, name: string): Promise<string> {
  const res = await app.http.get("/metrics");
  return (res.body as string).split("\n").filter((line) => line.startsWith(name)).join("\n");
}

describe("handshake", () => {
  it("welcomes a current agent and records its versions on the host", async () => {
    const creds = await f.enrolledHost();
    const channel = TestChannel.dial(urlA, creds.host.id, creds.token);
    await channel.opened;
    channel.send({ type: "hello", protocol_version: PROTOCOL_VERSION, agent_version: "9.9.9" });
    const welcome = await channel.next();
    expect(welcome).toMatchObject({ type: "welcome", host_id: creds.host.id, heartbeat_interval_s: a.config.heartbeatIntervalS });

    const host = await a.http.get(`/v1/hosts/${creds.host.id}`, { key: a.adminKey });
    expect(host.body).toMatchObject({ agent_version: "9.9.9", protocol_version: PROTOCOL_VERSION });
    expect(await metric(a, "muster_agent_channels ")).toMatch(/muster_agent_channels [1-9]/);
    channel.close();
  });

  it("rejects a too-old agent with a help URL and a close code it must not redial on", async () => {
    const creds = await f.enrolledHost();
    const channel = TestChannel.dial(urlA, creds.host.id, creds.token);
    await channel.opened;
    channel.send({ type: "hello", protocol_version: 0, agent_version: "0.0.1" });
    const rejected = await channel.next();
    expect(rejected).toMatchObject({ type: "rejected", code: "protocol_too_old", min_protocol_version: 1, help_url: a.config.agentUpgradeUrl });
    expect(rejected.type === "rejected" && rejected.message).toMatch(/protocol 0.*needs 1 or newer.*upgrade muster-agent/);
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.protocolTooOld);
    expect(await metric(a, "muster_agent_channel_rejections_total")).toMatch(/reason="protocol_too_old"} [1-9]/);
  });

  it("closes a channel that sends no hello in time", async () => {
    const creds = await f.enrolledHost();
    const channel = TestChannel.dial(urlA, creds.host.id, creds.token);
    await channel.opened;
    const started = Date.now();
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.helloTimeout);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await metric(a, "muster_agent_channel_rejections_total")).toMatch(/reason="hello_timeout"} [1-9]/);
  });

  it("closes a channel whose first message is not a hello", async () => {
    const creds = await f.enrolledHost();
    const channel = TestChannel.dial(urlA, creds.host.id, creds.token);
    await channel.opened;
    channel.send({ type: "heartbeat" });
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.badMessage);
  });

  it("refuses the upgrade without a host token, with another host's token, or for a deleted host", async () => {
    const creds = await f.enrolledHost();
    const other = await f.enrolledHost();
    await expect(TestChannel.dial(urlA, creds.host.id, "").opened).rejects.toMatchObject({ status: 401 });
    await expect(TestChannel.dial(urlA, creds.host.id, other.token).opened).rejects.toMatchObject({ status: 403 });
    await expect(TestChannel.dial(urlA, "host-nope", creds.token).opened).rejects.toMatchObject({ status: 400 });
    expect((await a.http.delete(`/v1/hosts/${creds.host.id}`, { key: a.adminKey })).status).toBe(204);
    await expect(TestChannel.dial(urlA, creds.host.id, creds.token).opened).rejects.toMatchObject({ status: 404 });
  });
});

describe("heartbeats over the channel", () => {
  it("turn the host online through the liveness service, with the same audit entry", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlA, creds.host.id, creds.token);
    channel.send({ type: "heartbeat", metrics: { cpu_percent: 42 } });
    const host = await eventually(async () => {
      const res = await a.http.get(`/v1/hosts/${creds.host.id}`, { key: a.adminKey });
      return res.body.status === "online" ? res.body : undefined;
    });
    expect(host.last_heartbeat_at).not.toBeNull();
    expect((await f.auditOf(creds.host.id, "host.online")).length).toBe(1);
    channel.close();
  });

  it("carry the agent's clock, so the host's skew is recorded", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlA, creds.host.id, creds.token);
    channel.send({ type: "heartbeat", sent_at: new Date(Date.now() + 3_600_000).toISOString() });
    const skew = await eventually(async () => {
      const res = await a.http.get(`/v1/hosts/${creds.host.id}`, { key: a.adminKey });
      return res.body.clock_skew_ms ?? undefined;
    });
    // An hour ahead, less the message's trip and the time until the batch reached the database.
    expect(skew).toBeGreaterThan(3_590_000);
    expect(skew).toBeLessThanOrEqual(3_600_000);
    channel.close();
  });

  it("close the channel with 'host deleted' once the host is gone", async () => {
    const creds = await f.enrolledHost();
    const channel = await TestChannel.open(urlA, creds.host.id, creds.token);
    expect((await a.http.delete(`/v1/hosts/${creds.host.id}`, { key: a.adminKey })).status).toBe(204);
    channel.send({ type: "heartbeat" });
    expect((await channel.closed).code).toBe(CHANNEL_CLOSE.hostDeleted);
  });
});

describe("expiry of the token a channel was opened with", () => {
  it("closes the channel with 'unauthorized', so the agent redials with its fresh token", async () => {
    const short = await startTestApp({ startLoops: true, stores: a.stores, config: { hostTokenTtlS: 2 } });
    const server = await listen(short);
    try {
      // Registered through the short-lived plane, so the host token it signs expires in 2 s.
      const { registration_token } = await f.regularHost();
      const creds = (await short.http.post("/v1/hosts/register", { body: { ...machineSpecs, token: registration_token } })).body;
      const channel = await TestChannel.open(server.baseUrl, creds.host.id, creds.token);
      const { code } = await channel.closed;
      expect(code).toBe(CHANNEL_CLOSE.unauthorized);
    } finally {
      await short.close();
      await server.close();
    }
  });
});

describe("one channel per host", () => {
  it("a second channel on the same control plane replaces the first", async () => {
    const creds = await f.enrolledHost();
    const first = await TestChannel.open(urlA, creds.host.id, creds.token);
    const second = await TestChannel.open(urlA, creds.host.id, creds.token);
    expect((await first.closed).code).toBe(CHANNEL_CLOSE.replaced);
    expect(a.runtime.channels.session(creds.host.id)?.isOpen).toBe(true);
    second.close();
  });

  it("the last one wins across two control-plane processes", async () => {
    const creds = await f.enrolledHost();
    const onA = await TestChannel.open(urlA, creds.host.id, creds.token);
    const onB = await TestChannel.open(urlB, creds.host.id, creds.token);
    expect((await onA.closed).code).toBe(CHANNEL_CLOSE.replaced);
    await eventually(async () => (a.runtime.channels.session(creds.host.id) === undefined ? true : undefined));
    expect(b.runtime.channels.session(creds.host.id)?.isOpen).toBe(true);
    onB.close();
  });

  it("of channels racing on both processes, exactly one survives", async () => {
    const creds = await f.enrolledHost();
    // Dialed and greeted at once, without waiting for welcomes: a racer may be replaced before its welcome.
    const racers = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const racer = TestChannel.dial(i % 2 === 0 ? urlA : urlB, creds.host.id, creds.token);
        await racer.opened;
        racer.send({ type: "hello", protocol_version: PROTOCOL_VERSION, agent_version: `racer-${i}` });
        return racer;
      }),
    );
    const open = () =>
      [a, b].filter((app) => app.runtime.channels.session(creds.host.id)?.isOpen).length === 1 &&
      racers.filter((racer) => racer.ws.readyState === racer.ws.OPEN).length === 1;
    await eventually(async () => (open() ? true : undefined));
    // And it stays that way: no late claim closes the survivor.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(open()).toBe(true);
    for (const racer of racers) racer.close();
  });
});

describe("the protocol header on HTTP register and heartbeat", () => {
  it("refuses a too-old agent without using up its registration token", async () => {
    const { registration_token } = await f.regularHost();
    const body = { token: registration_token, address: "10.0.0.1:1", arch: "x86_64", cpu_cores: 1, memory_mb: 1, disk_gb: 1 };
    const old = await a.http.post("/v1/hosts/register", { body, headers: { "x-muster-protocol": "0" } });
    expect(old.status).toBe(426);
    expect(old.body.error).toMatchObject({ code: "upgrade_required" });
    expect(old.body.error.message).toContain(a.config.agentUpgradeUrl);

    const current = await a.http.post("/v1/hosts/register", { body, headers: { "x-muster-protocol": String(PROTOCOL_VERSION) } });
    expect(current.status).toBe(201);
    expect(current.body.host.protocol_version).toBe(PROTOCOL_VERSION);
  });

  it("refuses a too-old heartbeat, accepts a current one and one without the header (SPEC §5)", async () => {
    const creds = await f.enrolledHost();
    const beat = (headers: Record<string, string>) => a.http.post(`/v1/hosts/${creds.host.id}/heartbeat`, { hostToken: creds.token, headers });
    expect((await beat({ "x-muster-protocol": "0" })).status).toBe(426);
    expect((await beat({ "x-muster-protocol": "one" })).status).toBe(400);
    expect((await beat({ "x-muster-protocol": String(PROTOCOL_VERSION) })).status).toBe(204);
    expect((await beat({})).status).toBe(204);
  });

  it("is checked on the heartbeat lane too: a known host's too-old beat over the socket is refused", async () => {
    const creds = await f.enrolledHost();
    const beat = (protocol: string) =>
      fetch(`${urlA}/v1/hosts/${creds.host.id}/heartbeat`, { method: "POST", headers: { "x-host-token": creds.token, "x-muster-protocol": protocol } });
    // The first beat makes the host known to this process; later ones are the lane's.
    expect((await beat(String(PROTOCOL_VERSION))).status).toBe(204);
    expect((await beat(String(PROTOCOL_VERSION))).status).toBe(204);
    const old = await beat("0");
    expect(old.status).toBe(426);
    expect(((await old.json()) as { error: { code: string } }).error.code).toBe("upgrade_required");
  });
});
