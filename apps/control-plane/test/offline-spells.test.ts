import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app.js";
import { FakeClock } from "./support/clock.js";
import { Factories } from "./support/factories.js";

let t: TestApp;
let f: Factories;
const clock = new FakeClock();

beforeAll(async () => {
  t = await startTestApp({ clock });
  f = new Factories(t);
});
afterAll(() => t.close());

const refresh = (refreshToken: string) => t.http.post("/v1/hosts/auth/refresh", { body: { refresh_token: refreshToken } });

describe("a host back from a long offline spell", () => {
  it("longer than its host token's lifetime: the heartbeat is refused, its refresh token still works", async () => {
    const creds = await f.enrolledHost();
    clock.advance((t.config.hostTokenTtlS + t.config.clockLeewayS) * 1000 + 1);

    const beat = await f.heartbeat(creds);
    expect(beat.status).toBe(401);
    expect(beat.body.error.code).toBe("unauthorized");
    const refreshed = await refresh(creds.refresh_token);
    expect(refreshed.status).toBe(200);
    expect((await f.heartbeat(refreshed.body)).status).toBe(204);
  });

  it("just short of its refresh token's lifetime: still comes back", async () => {
    const creds = await f.enrolledHost();
    clock.advance(t.config.refreshTokenTtlS * 1000 - 1000);
    const refreshed = await refresh(creds.refresh_token);
    expect(refreshed.status).toBe(200);
    expect((await f.heartbeat(refreshed.body)).status).toBe(204);
  });

  it("longer than its refresh token's lifetime: is told to register again and how; a new token brings it back", async () => {
    const creds = await f.enrolledHost();
    clock.advance(t.config.refreshTokenTtlS * 1000 + 1);

    expect((await f.heartbeat(creds)).status).toBe(401);
    const refused = await refresh(creds.refresh_token);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe("unauthorized");
    expect(refused.body.error.message).toMatch(/expired.*register again with a new registration token/);
    expect(refused.body.error.message).toContain("muster hosts token <host_id>");
    expect(refused.body.error.message).toContain("POST /v1/hosts/{id}/token");
    expect(refused.body.error.message).toContain("muster-agent --register <token>");
    // An expired token is not a stolen one: the host is not marked as reused.
    expect(await f.auditOf(creds.host.id, "host.refresh_reused")).toHaveLength(0);

    const token = await t.http.post(`/v1/hosts/${creds.host.id}/token`, { key: t.adminKey });
    expect(token.status).toBe(201);
    const again = await f.register(token.body.registration_token);
    expect((await f.heartbeat(again)).status).toBe(204);
  });
});
