import { decodeProtectedHeader, SignJWT, type JWTPayload } from "jose";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCredentials } from "@muster/contract";
import { signingKeys } from "../src/db/schema/index.js";
import { sealedContext } from "../src/secrets/sealer.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";
import { createTestStores, type TestStores } from "./support/stores.js";

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as JWTPayload;

async function refresh(t: TestApp, creds: HostCredentials): Promise<HostCredentials> {
  const res = await t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: creds.refresh_token } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

describe("rotating the host-token signing key", () => {
  const clock = new FakeClock(Date.now());
  let t: TestApp;
  let f: Factories;
  beforeAll(async () => {
    t = await startTestApp({ clock });
    f = new Factories(t);
  });
  afterAll(() => t.close());

  it("signs new tokens with the new key at once; tokens of the earlier one verify until they expire; audited", async () => {
    const host = await f.enrolledHost();
    const before = kidOf(host.token);
    const res = await t.http.post("/v1/system/signing-keys/rotate", { key: t.adminKey });
    expect(res.status).toBe(200);
    const retiresAt = clock.now().getTime() + (t.config.hostTokenTtlS + t.config.clockLeewayS + 60) * 1000;
    expect(res.body).toEqual({
      current: { kid: expect.stringMatching(/^sk-[a-z2-7]{26}$/), created_at: clock.now().toISOString(), retires_at: null },
      retiring: [{ kid: before, created_at: expect.any(String), retires_at: new Date(retiresAt).toISOString() }],
    });
    const after = res.body.current.kid;

    expect((await f.heartbeat(host)).status).toBe(204);
    const refreshed = await refresh(t, host);
    expect(kidOf(refreshed.token)).toBe(after);
    expect((await f.heartbeat(refreshed)).status).toBe(204);
    expect(kidOf((await f.enrolledHost()).token)).toBe(after);

    const me = await t.http.get("/v1/me", { key: t.adminKey });
    const audit = await t.http.get("/v1/audit?action=signing_key.rotated", { key: t.adminKey });
    expect(audit.body.items[0]).toMatchObject({
      actor: me.body.user.id,
      target_type: "signing_key",
      target_id: after,
      metadata: { previous_kid: before, automatic: false, previous_retires_at: new Date(retiresAt).toISOString() },
    });
  });

  it("retires the earlier key once every token it signed has expired: it leaves the database and signs nothing that verifies", async () => {
    const host = await f.enrolledHost();
    const old = kidOf(host.token)!;
    const [row] = await t.stores.database.db.select().from(signingKeys).where(eq(signingKeys.kid, old));
    const secret = t.runtime.deps.sealer.open({ kekId: row!.kekId!, sealed: row!.sealedSecret! }, sealedContext.signingKey(old));
    // A token of the old key that outlives it (only its holder could make one): it verifies while the key does.
    const forge = (jti: string) =>
      new SignJWT({ ...claimsOf(host.token), jti, exp: Math.floor(clock.now().getTime() / 1000) + 30 * 86400 })
        .setProtectedHeader({ alg: "HS256", kid: old, typ: "JWT" })
        .sign(secret);
    expect((await t.http.post(`/v1/hosts/${host.host.id}/heartbeat`, { hostToken: await forge("a") })).status).toBe(204);

    const rotated = await t.http.post("/v1/system/signing-keys/rotate", { key: t.adminKey });
    const retiresAt = Date.parse(rotated.body.retiring.find((key: { kid: string }) => key.kid === old).retires_at);
    clock.advance(retiresAt - clock.now().getTime() - 1000);
    await t.runtime.keyringWatch.tick();
    expect((await t.http.post(`/v1/hosts/${host.host.id}/heartbeat`, { hostToken: await forge("b") })).status).toBe(204);

    clock.advance(2000);
    await t.runtime.keyringWatch.tick();
    expect(await t.stores.database.db.select().from(signingKeys).where(eq(signingKeys.kid, old))).toEqual([]);
    expect((await t.http.post(`/v1/hosts/${host.host.id}/heartbeat`, { hostToken: await forge("c") })).status).toBe(401);
    expect(t.runtime.deps.hostTokens.list().retiring.map((key) => key.kid)).not.toContain(old);
  });
});

describe("a signing-key rotation in several control planes", () => {
  let stores: TestStores;
  let a: TestApp;
  let b: TestApp;
  let deaf: TestApp;
  beforeAll(async () => {
    stores = await createTestStores();
    [a, b, deaf] = [await startTestApp({ stores, startLoops: true }), await startTestApp({ stores, startLoops: true }), await startTestApp({ stores })];
  });
  afterAll(async () => {
    for (const app of [a, b, deaf]) await app?.close();
    await stores?.dispose();
  });

  it("reaches every process at once, and one that missed the announcement still verifies the new key's tokens", async () => {
    const host = await new Factories(a).enrolledHost();
    const rotated = await a.http.post("/v1/system/signing-keys/rotate", { key: a.adminKey });
    const kid = rotated.body.current.kid;
    await expect.poll(() => b.runtime.deps.hostTokens.list().current.kid, { timeout: 5000 }).toBe(kid);
    const fromB = await refresh(b, host);
    expect(kidOf(fromB.token)).toBe(kid);

    // `deaf` runs no subscription: a token naming a key it has not loaded makes it look in the database.
    expect(deaf.runtime.deps.hostTokens.list().current.kid).not.toBe(kid);
    expect((await new Factories(deaf).heartbeat(fromB)).status).toBe(204);
    expect(deaf.runtime.deps.hostTokens.list().current.kid).toBe(kid);
  });
});

describe("MUSTER_SIGNING_KEY_ROTATE_DAYS", () => {
  it("rotates a key that old by itself, once across processes, audited as the system's", async () => {
    const clock = new FakeClock(Date.now());
    const stores = await createTestStores();
    const config = { signingKeyRotateDays: 1 };
    const a = await startTestApp({ stores, clock, config });
    const b = await startTestApp({ stores, clock, config });
    try {
      const first = a.runtime.deps.hostTokens.list().current.kid;
      clock.advance(12 * 3600_000);
      await a.runtime.keyringWatch.tick();
      expect(a.runtime.deps.hostTokens.list().current.kid).toBe(first);

      clock.advance(12 * 3600_000 + 1000);
      await Promise.all([a.runtime.keyringWatch.tick(), b.runtime.keyringWatch.tick()]);
      const second = a.runtime.deps.hostTokens.list().current.kid;
      expect(second).not.toBe(first);
      expect(b.runtime.deps.hostTokens.list().current.kid).toBe(second);
      const audit = await a.http.get("/v1/audit?action=signing_key.rotated", { key: a.adminKey });
      expect(audit.body.items).toEqual([expect.objectContaining({ actor: "system", target_id: second, metadata: expect.objectContaining({ previous_kid: first, automatic: true }) })]);
    } finally {
      await a.close();
      await b.close();
      await stores.dispose();
    }
  });
});
