import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MusterClient } from "@muster/sdk";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { as, runCli, startCli } from "./support/cli.js";

/** `muster events --follow`: events as lines or NDJSON, filtered, until Ctrl-C. */
let cp: ControlPlane;
let admin: MusterClient;

beforeAll(async () => {
  cp = await startControlPlane();
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
});
afterAll(() => cp?.stop());

/** The log's head now, as a stream names it when it opens: the CLI started `--after` it misses nothing made later. */
async function head(): Promise<string> {
  const stop = new AbortController();
  let position = "";
  for await (const event of admin.events.watch({ signal: stop.signal, onConnect: (info) => (position = info.position, stop.abort()) })) void event;
  return position;
}

describe("muster events", () => {
  it("prints one line per event as it happens, and stops on Ctrl-C", async () => {
    const cli = startCli(["events", "--follow", "--after", await head()], as(cp.url, cp.adminKey));
    const { host } = await admin.hosts.create({ type: "regular", tags: ["gpu"] });
    const [line] = await cli.stdoutMatching(new RegExp(`^.*host\\.created.*${host.id}.*$`, "m"));
    expect(line).toMatch(/^\d{4}-\d{2}-\d{2}T\S+Z {2}host\.created\s+host-\w+ {2}status=pending tags=gpu$/);
    cli.child.kill("SIGINT");
    const { code, stderr } = await cli.exited;
    expect(code).toBe(130);
    expect(stderr).toContain("Following events");
  });

  it("--type filters (repeatable, with host.*) and --json prints the events as NDJSON", async () => {
    const cli = startCli(["events", "--follow", "--type", "host.deleted", "--type", "command.*", "--json", "--after", await head()], as(cp.url, cp.adminKey));
    const { host } = await admin.hosts.create({ type: "regular" });
    await admin.hosts.commands.send(host.id, { type: "ping" });
    await admin.hosts.delete(host.id);
    await cli.stdoutMatching(/host\.deleted/);
    cli.child.kill("SIGINT");
    const { stdout } = await cli.exited;
    const events = stdout.trim().split("\n").map((line) => JSON.parse(line) as { type: string; host_id: string; data: { status: string } });
    expect(events.map((event) => `${event.type} ${event.host_id}`)).toEqual([`command.queued ${host.id}`, `host.deleted ${host.id}`]);
    expect(events[0]!.data.status).toBe("queued");
  });

  it("refuses to run without --follow, and an unknown type, as usage errors", async () => {
    const bare = await runCli(["events"], as(cp.url, cp.adminKey));
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/add --follow/);
    const unknown = await runCli(["events", "--follow", "--type", "host.exploded"], as(cp.url, cp.adminKey));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/expected one of host\.created/);
  });
});
