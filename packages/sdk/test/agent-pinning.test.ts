import { X509Certificate } from "node:crypto";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedCertificate, startControlPlane, type ControlPlane } from "@muster/testkit";
import { certificatePin, HostAgent, MemoryCredentialStore, MusterClient, type StoredCredentials } from "../src/index.js";

/**
 * Server certificate pinning against a control plane serving TLS itself: the
 * pin arrives with the registration, a certificate with another key is refused
 * (fatal, with the way to re-pin), and re-pinning takes the current one.
 */
const served = selfSignedCertificate();
const other = selfSignedCertificate();
let cp: ControlPlane;
let admin: MusterClient;
const agents: HostAgent[] = [];

beforeAll(async () => {
  cp = await startControlPlane({ MUSTER_TLS_CERT_FILE: served.certFile, MUSTER_TLS_KEY_FILE: served.keyFile });
  // The operator's client trusts the self-signed certificate too.
  const dispatcher = new Agent({ connect: { ca: served.cert } });
  const trusting = ((input: string, init?: object) => undiciFetch(input, { ...init, dispatcher } as never)) as unknown as typeof fetch;
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey, fetch: trusting });
});
afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.stop()));
  await cp?.stop();
});

function agentWith(store: MemoryCredentialStore) {
  const agent = new HostAgent({
    controlPlane: cp.url,
    credentials: store,
    ca: served.cert,
    agentVersion: "7.7.7",
    specs: () => ({ arch: "x86_64", cpu_cores: 1, memory_mb: 512, disk_gb: 1 }),
  });
  agents.push(agent);
  return agent;
}

async function registered(): Promise<StoredCredentials> {
  const { registration_token } = await admin.hosts.create({ type: "regular" });
  return agentWith(new MemoryCredentialStore()).register({ token: registration_token, address: "127.0.0.1:7070" });
}

describe("certificate pinning", () => {
  it("pins the control plane's certificate at registration and keeps working with it, over HTTPS and the channel", async () => {
    const creds = await registered();
    expect(creds.server_certificate_pin).toBe(certificatePin(new X509Certificate(served.cert).raw));
    const agent = agentWith(new MemoryCredentialStore(creds));
    const opened = new Promise((resolve) => agent.once("channelOpen", resolve));
    await agent.start();
    await opened;
    expect(await admin.hosts.commands.run(creds.host_id, { type: "ping", timeout_s: 10 })).toMatchObject({ status: "succeeded" });
  });

  it("refuses a certificate with another key: the agent stops and says how to re-pin", async () => {
    const creds = await registered();
    const wrongPin = certificatePin(new X509Certificate(other.cert).raw);
    const agent = agentWith(new MemoryCredentialStore({ ...creds, server_certificate_pin: wrongPin }));
    await agent.start();
    const exit = await agent.done;
    expect(exit.reason).toBe("certificate_pin_mismatch");
    expect(exit).toMatchObject({ message: expect.stringContaining(`not the pinned ${wrongPin}`) });
    expect(exit).toMatchObject({ message: expect.stringContaining("--repin") });
  });

  it("re-pins on request: the next refresh pins the certificate served now", async () => {
    const creds = await registered();
    const store = new MemoryCredentialStore({ ...creds, server_certificate_pin: certificatePin(new X509Certificate(other.cert).raw) });
    const agent = agentWith(store);
    await agent.repin();
    const refreshed = new Promise((resolve) => agent.once("credentialsRefreshed", resolve));
    await agent.start();
    await refreshed;
    expect(store.credentials!.server_certificate_pin).toBe(creds.server_certificate_pin);
    expect(agent.state).toBe("running");
  });
});
