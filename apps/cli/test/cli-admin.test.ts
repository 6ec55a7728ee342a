import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { as, runCli } from "./support/cli.js";
import { makeTeam, unique } from "./support/fixtures.js";

let cp: ControlPlane;
let admin: Record<string, string>;
beforeAll(async () => {
  cp = await startControlPlane();
  admin = as(cp.url, cp.adminKey);
});
afterAll(() => cp?.stop());

/** Runs the CLI and insists it succeeded; returns stdout. */
async function ok(args: string[], env: Record<string, string>): Promise<string> {
  const result = await runCli(args, env);
  expect(result.stderr, `muster ${args.join(" ")}`).toBe("");
  expect(result.code, `muster ${args.join(" ")}`).toBe(0);
  return result.stdout;
}
const json = async <T = any>(args: string[], env: Record<string, string>): Promise<T> => JSON.parse(await ok([...args, "--json"], env));

describe("muster whoami", () => {
  it("shows the key's user, role and team, as a table or as JSON", async () => {
    const { team, owner } = await makeTeam(cp.url, cp.adminKey);
    const human = await ok(["whoami"], as(cp.url, owner.key));
    expect(human).toMatch(new RegExp(`User: +${owner.user.email} \\(${owner.user.id}\\)`));
    expect(human).toMatch(/Role: +owner/);
    expect(human).toContain(team.id);
    expect(await json(["whoami"], as(cp.url, owner.key))).toMatchObject({ role: "owner", team: { id: team.id }, user: { id: owner.user.id } });
  });

  it("takes --url and --api-key over the environment", async () => {
    const { owner } = await makeTeam(cp.url, cp.adminKey);
    const me = await json(["--url", cp.url, "--api-key", owner.key, "whoami"], as("http://127.0.0.1:9", "msk_wrong"));
    expect(me.user.id).toBe(owner.user.id);
  });
});

describe("API errors", () => {
  it("exit 1 with one line: the API's code, its message, the status and the request ID", async () => {
    const { code, stdout, stderr } = await runCli(["hosts", "get", `host-${"a".repeat(26)}`], admin);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^error: not_found: host not found \(HTTP 404, request [\w-]+\)\n$/);
  });

  it("says unauthorized, and where the key comes from, for a wrong key", async () => {
    const { code, stderr } = await runCli(["whoami"], as(cp.url, "msk_not_a_real_key_at_all_000000000000"));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: unauthorized: .* \(check MUSTER_API_KEY\) \(HTTP 401, request [\w-]+\)\n$/);
  });

  it("says forbidden when the role does not allow the action", async () => {
    const { member } = await makeTeam(cp.url, cp.adminKey);
    const { code, stderr } = await runCli(["users", "create", `x-${unique()}@example.com`], as(cp.url, member.key));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: forbidden: /);
  });
});

describe("muster teams, users, keys", () => {
  it("an admin creates a team and a user, makes them owner, and lists both", async () => {
    const name = `research-${unique()}`;
    const email = `ada-${unique()}@example.com`;
    const { team } = await json(["teams", "create", name], admin);
    const { user } = await json(["users", "create", email, "--name", "Ada Lovelace", "--admin"], admin);
    expect(team.name).toBe(name);
    expect(user).toMatchObject({ email, name: "Ada Lovelace", is_admin: true });

    const { member } = await json(["teams", "members", "add", team.id, user.id, "--role", "owner"], admin);
    expect(member).toMatchObject({ team_id: team.id, user_id: user.id, role: "owner" });

    expect(await ok(["teams", "list", "--all"], admin)).toMatch(new RegExp(`${team.id} +${name}`));
    const users = await json<{ id: string }[]>(["users", "list", "--all"], admin);
    expect(users.map((u) => u.id)).toContain(user.id);
    expect(await ok(["users", "ls", "--all"], admin)).toMatch(new RegExp(`${user.id} +${email} +Ada Lovelace +yes`));
  });

  it("an owner removes a member, whose key stops working", async () => {
    const { team, owner, member } = await makeTeam(cp.url, cp.adminKey);
    expect(await ok(["teams", "members", "rm", team.id, member.user.id], as(cp.url, owner.key))).toBe(`Removed ${member.user.id} from ${team.id}\n`);
    expect((await runCli(["whoami"], as(cp.url, member.key))).code).toBe(1);
  });

  it("creates a key and prints its secret once, lists keys without secrets, and revokes", async () => {
    const { owner } = await makeTeam(cp.url, cp.adminKey);
    const human = await ok(["keys", "create", "laptop", "--expires-in", "1h"], as(cp.url, owner.key));
    const secret = human.match(/^ {2}(\S+)$/m)?.[1];
    const id = human.match(/Created API key (key-\w+)/)?.[1];
    expect(secret).toBeDefined();
    expect(human).toMatch(/It expires at \d{4}-/);
    expect((await json(["whoami"], as(cp.url, secret!))).user.id).toBe(owner.user.id);

    const listed = await ok(["keys", "list"], as(cp.url, owner.key));
    expect(listed).toMatch(new RegExp(`${id} +laptop`));
    expect(listed).not.toContain(secret);

    expect(await ok(["keys", "revoke", id!], as(cp.url, owner.key))).toBe(`Revoked API key ${id}\n`);
    const after = await runCli(["whoami"], as(cp.url, secret!));
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/unauthorized/);
  });

  it("cuts lists at --limit and says so on stderr, keeping stdout clean", async () => {
    for (let i = 0; i < 3; i++) await runCli(["teams", "create", `many-${unique()}`], admin);
    const { code, stdout, stderr } = await runCli(["teams", "list", "--limit", "2"], admin);
    expect(code).toBe(0);
    expect(stdout.trim().split("\n")).toHaveLength(3);
    expect(stderr).toMatch(/Showing the first 2 teams; use --limit or --all/);
    expect(await json(["teams", "list", "--limit", "2"], admin)).toHaveLength(2);
  });
});

describe("muster audit", () => {
  it("shows an owner their team's story, filtered by target and action", async () => {
    const { owner } = await makeTeam(cp.url, cp.adminKey);
    const env = as(cp.url, owner.key);
    const { host } = await json(["hosts", "create", "--tag", "gpu"], env);
    await ok(["hosts", "tag", "add", host.id, "eu"], env);

    const table = await ok(["audit", "--target", host.id], env);
    const lines = table.trim().split("\n");
    expect(lines[0]).toMatch(/^TIME +ACTION +ACTOR +TARGET +TEAM +DETAILS$/);
    expect(lines.slice(1).map((line) => line.split(/ +/)[1])).toEqual(["host.tag_added", "host.created"]);
    expect(lines[1]).toContain("tag=eu");

    const created = await json<{ action: string; actor: string }[]>(["audit", "--target", host.id, "--action", "host.created"], env);
    expect(created).toEqual([expect.objectContaining({ action: "host.created", actor: owner.user.id })]);
  });
});

describe("muster admin", () => {
  it("rotates the signing key, and shows which key signs and which retire when", async () => {
    const human = await ok(["admin", "rotate-signing-key"], admin);
    const kid = human.match(/^Rotated: (sk-\w+) signs host tokens from now on\.$/m)?.[1];
    expect(kid).toBeDefined();
    expect(human).toMatch(/^KID +CREATED +RETIRES$/m);
    expect(human).toMatch(new RegExp(`^${kid} +\\S+ +signs new tokens$`, "m"));
    const keys = await json(["admin", "rotate-signing-key"], admin);
    expect(keys.retiring.map((key: { kid: string }) => key.kid)).toContain(kid);
    expect(keys.current.kid).not.toBe(kid);
  });

  it("starts a CA rotation, shows its phase, and completes it", async () => {
    expect(await ok(["admin", "ca"], admin)).toMatch(/^Phase: +standby$/m);
    const started = await ok(["admin", "rotate-ca"], admin);
    expect(started).toMatch(/^Rotation started: agents pick up the new CA at their next refresh\./);
    expect(started).toMatch(/^Phase: +rotating$/m);
    expect(started).toMatch(/^Previous CA: +ca \(sha256 [0-9a-f]{64}\)$/m);
    expect(await json(["admin", "ca"], admin)).toMatchObject({ phase: "rotating", hosts_on_previous_ca: 0 });
    const completed = await ok(["admin", "rotate-ca", "--complete"], admin);
    expect(completed).toMatch(/^The previous CA is retired\.\nPhase: +standby$/m);
  });

  it("is for admins: another key gets forbidden", async () => {
    const { owner } = await makeTeam(cp.url, cp.adminKey);
    for (const args of [["admin", "rotate-signing-key"], ["admin", "ca"], ["admin", "rotate-ca"]]) {
      const { code, stderr } = await runCli(args, as(cp.url, owner.key));
      expect(code).toBe(1);
      expect(stderr).toMatch(/^error: forbidden: this action needs an admin API key/);
    }
  });
});
