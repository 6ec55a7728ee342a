import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { HostCredentials, HostWithRegistrationToken, Team, User } from "@muster/contract";
import type { TestApp } from "./app.js";

const unique = () => randomBytes(4).toString("hex");

export interface TeamFixture {
  team: Team;
  owner: { user: User; key: string };
  member: { user: User; key: string };
}

export const machineSpecs = {
  address: "10.1.2.3:7070",
  arch: "x86_64",
  cpu_cores: 8,
  memory_mb: 16384,
  disk_gb: 200,
  hostname: "worker-1",
  os: "linux",
  agent_version: "0.1.0",
};

/**
 * Builders that go through the public API with the admin key, so every test
 * makes its own team and users with unique names and leans on no seeded IDs.
 */
export class Factories {
  constructor(private readonly t: TestApp) {}

  async user(isAdmin = false): Promise<User> {
    const res = await this.t.http.post("/v1/users", {
      key: this.t.adminKey,
      body: { email: `u-${unique()}@example.test`, name: "Test user", is_admin: isAdmin },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.user;
  }

  async key(userId: string, teamId?: string): Promise<string> {
    const res = await this.t.http.post("/v1/api-keys", {
      key: this.t.adminKey,
      body: { name: `key-${unique()}`, user_id: userId, ...(teamId ? { team_id: teamId } : {}) },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.key;
  }

  async member(teamId: string, role: "owner" | "member"): Promise<{ user: User; key: string }> {
    const user = await this.user();
    const res = await this.t.http.post(`/v1/teams/${teamId}/members`, {
      key: this.t.adminKey,
      body: { user_id: user.id, role },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { user, key: await this.key(user.id, teamId) };
  }

  async team(): Promise<TeamFixture> {
    const res = await this.t.http.post("/v1/teams", { key: this.t.adminKey, body: { name: `team-${unique()}` } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const team: Team = res.body.team;
    return { team, owner: await this.member(team.id, "owner"), member: await this.member(team.id, "member") };
  }

  async host(key: string, body: Record<string, unknown>): Promise<HostWithRegistrationToken> {
    const res = await this.t.http.post("/v1/hosts", { key, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  regularHost(extra: Record<string, unknown> = {}) {
    return this.host(this.t.adminKey, { type: "regular", ...extra });
  }

  async register(token: string, specs: Record<string, unknown> = {}): Promise<HostCredentials> {
    const res = await this.t.http.post("/v1/hosts/register", { body: { token, ...machineSpecs, ...specs } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  /** A registered regular host with live credentials. */
  async enrolledHost(): Promise<HostCredentials> {
    const { registration_token } = await this.regularHost();
    return this.register(registration_token);
  }

  heartbeat(creds: { host: { id: string }; token: string }, metrics?: unknown) {
    return this.t.http.post(`/v1/hosts/${creds.host.id}/heartbeat`, {
      hostToken: creds.token,
      ...(metrics === undefined ? {} : { body: metrics }),
    });
  }

  async auditOf(targetId: string, action?: string) {
    const query = new URLSearchParams({ target_id: targetId, ...(action ? { action } : {}) });
    const res = await this.t.http.get(`/v1/audit?${query}`, { key: this.t.adminKey });
    expect(res.status).toBe(200);
    return res.body.items as { action: string; actor: string; metadata: Record<string, unknown> }[];
  }
}
