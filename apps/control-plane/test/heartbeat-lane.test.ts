import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import { createHttpServer } from "../src/http/server.js";
import { LivenessSet } from "../src/services/liveness-set.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

/**
 * The heartbeat lane answers known hosts' plain beats before the app sees
 * them. These tests run a real Node server and count the requests that reach
 * the app: every case the lane must not decide has to arrive there and get
 * the app's answer, even with a token the lane has seen verified before.
 */
describe("heartbeat lane over a real socket", () => {
  let t: TestApp;
  let f: Factories;
  let server: Server;
  let base: string;
  let appCalls = 0;
  const clock = new FakeClock();

  beforeAll(async () => {
    t = await startTestApp({ clock, startLoops: true });
    f = new Factories(t);
    const fetch = t.runtime.app.fetch;
    server = createHttpServer((request, env) => (appCalls++, fetch(request, env)), t.runtime.deps);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await t.close();
  });

  const beat = (creds: HostCredentials, init: { path?: string; body?: string; headers?: Record<string, string> } = {}) =>
    fetch(`${base}${init.path ?? `/v1/hosts/${creds.host.id}/heartbeat`}`, {
      method: "POST",
      headers: { "x-host-token": creds.token, ...init.headers },
      ...(init.body === undefined ? {} : { body: init.body }),
    });

  /** A host whose first beat went through the app, so the lane knows it and its token. */
  async function knownHost(): Promise<HostCredentials> {
    const creds = await f.enrolledHost();
    expect((await beat(creds)).status).toBe(204);
    return creds;
  }

  async function viaApp(send: () => Promise<Response>): Promise<Response> {
    const before = appCalls;
    const res = await send();
    expect(appCalls, "the request should have reached the app").toBe(before + 1);
    return res;
  }

  it("answers a known host's plain beat itself, as the app would: 204, a request ID, the beat recorded and counted", async () => {
    const creds = await knownHost();
    clock.advance(1000);
    const before = appCalls;
    const res = await beat(creds);
    expect(appCalls).toBe(before);
    expect(res.status).toBe(204);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    await t.runtime.deps.liveness.flushScores();
    const [score] = await new LivenessSet(t.stores.kv).scores([creds.host.id]);
    expect(score).toBe(clock.now().getTime());
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/muster_http_requests_total\{method="POST",route="\/v1\/hosts\/:id\/heartbeat",status="204"\} \d+/);
  });

  it("records the clock skew a known host's beat reports, as the app does", async () => {
    const creds = await knownHost();
    const before = appCalls;
    const res = await beat(creds, { headers: { "x-muster-agent-clock": new Date(clock.now().getTime() - 7_000).toISOString() } });
    expect(appCalls).toBe(before);
    expect(res.status).toBe(204);
    await t.runtime.deps.liveness.flush();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.clock_skew_ms).toBe(-7_000);
  });

  it("leaves a first beat to the app", async () => {
    const creds = await f.enrolledHost();
    expect((await viaApp(() => beat(creds))).status).toBe(204);
  });

  it("leaves another host's path to the app: 403", async () => {
    const [creds, other] = [await knownHost(), await knownHost()];
    const res = await viaApp(() => beat(creds, { path: `/v1/hosts/${other.host.id}/heartbeat` }));
    expect(res.status).toBe(403);
  });

  it("leaves a re-registered host's old token to the app: 401", async () => {
    const creds = await knownHost();
    const { registration_token } = (await t.http.post(`/v1/hosts/${creds.host.id}/token`, { key: t.adminKey })).body;
    await f.register(registration_token);
    expect((await viaApp(() => beat(creds))).status).toBe(401);
  });

  it("leaves a deleted host to the app: 404", async () => {
    const creds = await knownHost();
    expect((await t.http.delete(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).status).toBe(204);
    expect((await viaApp(() => beat(creds))).status).toBe(404);
  });

  it("leaves a beat with metrics to the app, which stores them", async () => {
    const creds = await knownHost();
    const metrics = { cpu_percent: 12.5 };
    const res = await viaApp(() => beat(creds, { body: JSON.stringify(metrics), headers: { "content-type": "application/json" } }));
    expect(res.status).toBe(204);
    await t.runtime.deps.liveness.flush();
    expect((await t.http.get(`/v1/hosts/${creds.host.id}`, { key: t.adminKey })).body.metrics).toEqual(metrics);
  });

  it("leaves an oversized body to the app: 413", async () => {
    const creds = await knownHost();
    const body = JSON.stringify({ cpu_percent: 1, pad: "x".repeat(70 * 1024) });
    expect((await viaApp(() => beat(creds, { body, headers: { "content-type": "application/json" } }))).status).toBe(413);
  });

  it("leaves a query string to the app", async () => {
    const creds = await knownHost();
    const res = await viaApp(() => beat(creds, { path: `/v1/hosts/${creds.host.id}/heartbeat?x=1` }));
    const direct = await t.http.post(`/v1/hosts/${creds.host.id}/heartbeat?x=1`, { hostToken: creds.token });
    expect(res.status).toBe(direct.status);
  });

  it("leaves a token expired beyond the leeway to the app: 401", async () => {
    const creds = await knownHost();
    clock.advance((t.config.hostTokenTtlS + t.config.clockLeewayS) * 1000 + 1000);
    expect((await viaApp(() => beat(creds))).status).toBe(401);
  });
});
