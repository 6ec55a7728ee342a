import type { Host, MeResponse } from "@muster/sdk/client";
import { describe, expect, it } from "vitest";
import { agentCommand } from "../src/agent-command.js";
import { emptySummary, summarize } from "../src/fleet.js";
import { parseTags, skew, timeAgo } from "../src/format.js";
import { abilitiesOf } from "../src/permissions.js";

const TEAM = "team-aaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER = "team-bbbbbbbbbbbbbbbbbbbbbbbbbb";
const me = (role: MeResponse["role"], teamId: string | null = TEAM): MeResponse => ({
  user: { id: "usr-aaaaaaaaaaaaaaaaaaaaaaaaaa", email: "a@example.test", name: null, is_admin: role === "admin", created_at: "2026-01-01T00:00:00Z" },
  team: teamId ? { id: teamId, name: "t", created_at: "2026-01-01T00:00:00Z" } : null,
  role,
});

describe("what the console offers each role (SPEC §3)", () => {
  it("offers an admin everything, on every host and team", () => {
    const can = abilitiesOf(me("admin", null));
    expect([can.createHosts, can.createRegularHosts, can.readAudit, can.createTeams, can.manageUsers, can.createKeysForOthers, can.seesAllTeams]).toEqual(Array(7).fill(true));
    expect(can.manageHost({ type: "regular", team_id: null })).toBe(true);
    expect(can.manageHost({ type: "byoc", team_id: OTHER })).toBe(true);
    expect(can.manageMembers(OTHER)).toBe(true);
  });

  it("offers an owner their team's BYOC hosts, members, audit and keys, and nothing of another team or the platform", () => {
    const can = abilitiesOf(me("owner"));
    expect([can.createHosts, can.readAudit]).toEqual([true, true]);
    expect([can.createRegularHosts, can.createTeams, can.manageUsers, can.createKeysForOthers, can.seesAllTeams]).toEqual(Array(5).fill(false));
    expect(can.manageHost({ type: "byoc", team_id: TEAM })).toBe(true);
    expect(can.manageHost({ type: "byoc", team_id: OTHER })).toBe(false);
    expect(can.manageHost({ type: "regular", team_id: null })).toBe(false);
    expect([can.manageMembers(TEAM), can.manageMembers(OTHER)]).toEqual([true, false]);
    expect(can.revokeKey({ user_id: "usr-bbbbbbbbbbbbbbbbbbbbbbbbbb", team_id: TEAM })).toBe(true);
    expect(can.revokeKey({ user_id: "usr-bbbbbbbbbbbbbbbbbbbbbbbbbb", team_id: OTHER })).toBe(false);
  });

  it("offers a member reading only, and their own keys", () => {
    const can = abilitiesOf(me("member"));
    expect([can.createHosts, can.readAudit, can.createTeams, can.manageUsers, can.seesAllTeams]).toEqual(Array(5).fill(false));
    expect(can.manageHost({ type: "byoc", team_id: TEAM })).toBe(false);
    expect(can.manageMembers(TEAM)).toBe(false);
    expect(can.revokeKey({ user_id: "usr-aaaaaaaaaaaaaaaaaaaaaaaaaa", team_id: TEAM })).toBe(true);
    expect(can.revokeKey({ user_id: "usr-bbbbbbbbbbbbbbbbbbbbbbbbbb", team_id: TEAM })).toBe(false);
  });
});

describe("the agent command", () => {
  it("is the agent's flags with the control plane, the token and the address, pasteable as is", () => {
    expect(agentCommand("https://muster.example.com", "ab12", "10.0.0.7:7070")).toBe(
      "./muster-agent --control-plane https://muster.example.com --register ab12 --address 10.0.0.7:7070",
    );
  });

  it("quotes what a shell would otherwise split or expand, and names a missing address", () => {
    expect(agentCommand("http://h:1", "t", "[::1]:7070 ; rm -rf /")).toBe("./muster-agent --control-plane http://h:1 --register t --address '[::1]:7070 ; rm -rf /'");
    expect(agentCommand("http://h:1", "t", "it's")).toBe(`./muster-agent --control-plane http://h:1 --register t --address 'it'\\''s'`);
    expect(agentCommand("http://h:1", "t", "  ")).toMatch(/--address IP:PORT$/);
  });
});

describe("the fleet summary", () => {
  const host = (status: Host["status"], type: Host["type"], lastBeat: string | null) => ({ status, type, last_heartbeat_at: lastBeat }) as Host;

  it("counts by status and type, and what went offline within the hour", () => {
    const now = Date.parse("2026-06-01T12:00:00Z");
    const summary = summarize(
      emptySummary(),
      [
        host("online", "regular", "2026-06-01T11:59:59Z"),
        host("offline", "byoc", "2026-06-01T11:30:00Z"),
        host("offline", "byoc", "2026-06-01T10:00:00Z"),
        host("pending", "byoc", null),
      ],
      now,
    );
    expect(summary).toEqual({
      total: 4,
      byStatus: { online: 1, offline: 2, pending: 1 },
      byType: { regular: { online: 1, offline: 0, pending: 0 }, byoc: { online: 0, offline: 2, pending: 1 } },
      offlineInLastHour: 1,
    });
  });
});

describe("formats", () => {
  it("says how long ago, and never for a host never heard from", () => {
    const now = Date.parse("2026-06-01T12:00:00Z");
    expect(timeAgo(null, now)).toBe("never");
    expect(timeAgo("2026-06-01T11:59:58Z", now)).toBe("just now");
    expect(timeAgo("2026-06-01T11:59:18Z", now)).toBe("42 s ago");
    expect(timeAgo("2026-06-01T09:00:00Z", now)).toBe("3 h ago");
  });

  it("says which way a clock is off", () => {
    expect([skew(null), skew(-40), skew(2500), skew(-1500)]).toEqual(["not measured", "-40 ms (in step)", "2.5 s ahead", "1.5 s behind"]);
  });

  it("reads tags separated by spaces or commas, each once", () => {
    expect(parseTags(" gpu, zone:eu-1  gpu,,")).toEqual(["gpu", "zone:eu-1"]);
  });
});
