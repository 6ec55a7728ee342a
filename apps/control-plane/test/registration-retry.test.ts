import { createHash, type webcrypto } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../src/lib/secrets.js";
import { registrationReplayKey } from "../src/services/kv-keys.js";
import { machineFingerprint, RegistrationReplay, REPLAY_WINDOW_MS } from "../src/services/registration-replay.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories, machineSpecs } from "./support/factories.js";
import { keyPair, makeCsr, refreshProof } from "./support/pki.js";

let t: TestApp;
let f: Factories;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
});
afterAll(() => t.close());

const machineId = (name: string) => createHash("sha256").update(name).digest("hex");
const csrKeys = new Map<string, webcrypto.CryptoKeyPair>();
/** A CSR for a new key; its key is kept to sign refresh proofs. */
const newCsr = async () => {
  const keys = await keyPair();
  const csr = await makeCsr(keys);
  csrKeys.set(csr, keys);
  return csr;
};
const refreshProofFor = (csr: string, refreshToken: string) => refreshProof(csrKeys.get(csr)!, refreshToken);
const register = (token: string, extra: Record<string, unknown> = {}) =>
  t.http.post("/v1/hosts/register", { body: { token, ...machineSpecs, ...extra } });

describe("a registration retried after a lost response", () => {
  it("gets the very same credentials, certificate included, and they work", async () => {
    const { registration_token, host } = await f.regularHost();
    const machine = { machine_id: machineId("m-1"), csr: await makeCsr(await keyPair()) };
    const first = await register(registration_token, machine);
    expect(first.status).toBe(201);
    expect(first.body.certificate).toBeDefined();

    clock.advance(30_000);
    const retried = await register(registration_token, machine);
    expect(retried.status).toBe(201);
    expect(retried.body).toEqual(first.body);
    expect((await f.heartbeat(retried.body)).status).toBe(204);
    expect(await f.auditOf(host.id, "host.registered")).toHaveLength(1);
  });

  it("hands out the refresh token that is still live, which then rotates as usual", async () => {
    const { registration_token } = await f.regularHost();
    const machine = { machine_id: machineId("m-2"), csr: await newCsr() };
    const first = await register(registration_token, machine);
    const retried = await register(registration_token, machine);
    expect(retried.body.refresh_token).toBe(first.body.refresh_token);

    const proof = await refreshProofFor(machine.csr, retried.body.refresh_token);
    const refreshed = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: retried.body.refresh_token, proof } });
    expect(refreshed.status).toBe(200);
    expect((await f.heartbeat(refreshed.body)).status).toBe(204);
    // Once used, the old answer holds a spent refresh token: it is not handed out again.
    expect((await register(registration_token, machine)).status).toBe(401);
    expect((await f.heartbeat(refreshed.body)).status).toBe(204);
  });

  it("recognises the machine by its specs and CSR when it sends no machine_id", async () => {
    const { registration_token } = await f.regularHost();
    const csr = await newCsr();
    const first = await register(registration_token, { csr });
    expect((await register(registration_token, { csr })).body).toEqual(first.body);
    expect((await register(registration_token, { csr, memory_mb: 8192 })).status).toBe(401);
  });

  it("only for a registration that sent a CSR: without one, a repeat (anyone who saw the host's specs could send it) is a used token", async () => {
    const unknown = await register("e".repeat(64));
    const { registration_token } = await f.regularHost();
    expect((await register(registration_token, { machine_id: machineId("m-9") })).status).toBe(201);
    const repeat = await register(registration_token, { machine_id: machineId("m-9") });
    expect(repeat.status).toBe(401);
    expect(repeat.body).toEqual(unknown.body);
  });

  it("from another machine, with another key, or another CSR for the same key, gets the usual 401", async () => {
    const unknown = await register("e".repeat(64));
    const { registration_token } = await f.regularHost();
    const keys = await keyPair();
    const csr = await makeCsr(keys);
    expect((await register(registration_token, { machine_id: machineId("m-3"), csr })).status).toBe(201);

    const otherMachine = await register(registration_token, { machine_id: machineId("m-4"), csr });
    const otherKey = await register(registration_token, { machine_id: machineId("m-3"), csr: await makeCsr(await keyPair()) });
    const otherCsr = await register(registration_token, { machine_id: machineId("m-3"), csr: await makeCsr(keys) });
    const noKey = await register(registration_token, { machine_id: machineId("m-3") });
    for (const refusal of [otherMachine, otherKey, otherCsr, noKey]) {
      expect(refusal.status).toBe(401);
      expect(refusal.body).toEqual(unknown.body);
    }
  });

  it("is refused once the replay window is over", async () => {
    const { registration_token } = await f.regularHost();
    const csr = await newCsr();
    expect((await register(registration_token, { csr })).status).toBe(201);
    clock.advance(REPLAY_WINDOW_MS + 1);
    const late = await register(registration_token, { csr });
    expect(late.status).toBe(401);
    expect(late.body.error.message).toContain("already used");
  });

  it("is refused after the host was registered again or deleted", async () => {
    const created = await f.regularHost();
    const [csr, reinstalled] = [await newCsr(), await newCsr()];
    expect((await register(created.registration_token, { csr })).status).toBe(201);
    const again = await t.http.post(`/v1/hosts/${created.host.id}/token`, { key: t.adminKey });
    expect((await register(again.body.registration_token, { hostname: "reinstalled", csr: reinstalled })).status).toBe(201);
    expect((await register(created.registration_token, { csr })).status).toBe(401);

    await t.http.delete(`/v1/hosts/${created.host.id}`, { key: t.adminKey });
    expect((await register(again.body.registration_token, { hostname: "reinstalled", csr: reinstalled })).status).toBe(401);
  });

  it("leaves nothing readable in the KV store: the answer is sealed with a key only the token gives", async () => {
    const { registration_token } = await f.regularHost();
    const creds = (await register(registration_token, { csr: await newCsr() })).body;
    const stored = await t.stores.kv.get(registrationReplayKey(hashSecret(registration_token)));
    expect(stored).not.toBeNull();
    for (const secret of [registration_token, creds.refresh_token, creds.token, creds.host.id]) expect(stored).not.toContain(secret);
    expect(() => JSON.parse(stored!)).toThrow();
  });
});

describe("concurrent registrations with one token from one machine", () => {
  it("register once; the others wait for it and get the same credentials", async () => {
    const { registration_token, host } = await f.regularHost();
    const machine = { machine_id: machineId("m-5"), csr: await newCsr() };
    const results = await Promise.all(Array.from({ length: 20 }, () => register(registration_token, machine)));
    expect(results.map((r) => r.status)).toEqual(results.map(() => 201));
    for (const r of results) expect(r.body).toEqual(results[0]!.body);
    expect(await f.auditOf(host.id, "host.registered")).toHaveLength(1);
    expect((await register(registration_token, machine)).body).toEqual(results[0]!.body);
  });

  it("refuse an unknown token alike, each with the same 401, however many arrive at once", async () => {
    const csr = await newCsr();
    const results = await Promise.all(Array.from({ length: 20 }, () => register("f".repeat(64), { machine_id: machineId("m-8"), csr })));
    expect(results.map((r) => r.status)).toEqual(results.map(() => 401));
    for (const r of results) expect(r.body).toEqual(results[0]!.body);
  });

  it("answers 409 when the same machine's registration stays in progress for seconds; another machine is not held up by the claim (the token decides)", async () => {
    const { registration_token } = await f.regularHost();
    const csr = await newCsr();
    const body = { token: registration_token, ...machineSpecs, machine_id: machineId("m-6"), csr };
    // A claim whose request never finishes: a control plane killed mid-registration leaves one behind.
    const orphaned = new RegistrationReplay(t.runtime.deps, registration_token, hashSecret(registration_token), machineFingerprint(body, csr));
    expect(await orphaned.claim()).toBeNull();

    const waiting = await register(registration_token, { machine_id: machineId("m-6"), csr });
    expect(waiting.status).toBe(409);
    expect(waiting.headers.get("retry-after")).toBe("1");
    expect((await register(registration_token, { machine_id: machineId("m-7"), csr: await newCsr() })).status).toBe(201);
    expect((await register(registration_token, { machine_id: machineId("m-6"), csr })).status).toBe(401);
  });
});
