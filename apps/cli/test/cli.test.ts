import { createServer, type Socket } from "node:net";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { freePort } from "@muster/testkit";
import { buildProgram } from "../src/program.js";
import { runCli } from "./support/cli.js";

/** Every command path of the tree, e.g. ["hosts", "tag", "add"]. */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [path, ...commandPaths(sub, path)];
  });
}

const io = { stdout: { write: () => true }, stderr: { write: () => true }, env: {}, signal: new AbortController().signal, version: "0" };

describe("help and usage", () => {
  it("answers --help on every command, on stdout, with exit code 0", async () => {
    const paths = commandPaths(buildProgram(io));
    expect(paths.map((p) => p.join(" "))).toEqual(
      expect.arrayContaining(["hosts create", "hosts list", "hosts get", "hosts delete", "hosts token", "hosts tag add", "hosts tag rm", "hosts tag ls",
        "teams create", "teams list", "teams members add", "teams members rm", "users create", "users list",
        "keys create", "keys list", "keys revoke", "audit", "whoami"]),
    );
    const results = await Promise.all([[], ...paths].map((path) => runCli([...path, "--help"])));
    results.forEach((result, i) => {
      const path = ["muster", ...([[], ...paths][i] ?? [])].join(" ");
      expect(result.code, path).toBe(0);
      expect(result.stdout, path).toContain(`Usage: ${path}`);
      expect(result.stderr, path).toBe("");
    });
  });

  it("documents the environment and the exit codes in the top-level help", async () => {
    const { stdout } = await runCli(["--help"]);
    expect(stdout).toContain("MUSTER_URL");
    expect(stdout).toContain("MUSTER_API_KEY");
    expect(stdout).toMatch(/Exit codes:[\s\S]*2 +usage error[\s\S]*3 +cannot reach/);
  });

  it("prints its version", async () => {
    const { code, stdout } = await runCli(["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("exits 2 on usage errors, with one line saying what was wrong", async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: muster/],
      [["frobnicate"], /unknown command 'frobnicate'/],
      [["hosts", "list", "--bogus"], /unknown option '--bogus'/],
      [["hosts", "get"], /missing required argument 'host_id'/],
      [["hosts", "list", "--limit", "0"], /--limit.*whole number/],
      [["hosts", "list", "--status", "dead"], /Allowed choices are pending, online, offline/],
      [["hosts", "create", "--type", "vm"], /Allowed choices are regular, byoc/],
      [["hosts", "create", "--wait", "--timeout", "soon"], /duration/],
      [["hosts", "create", "--timeout", "5m"], /--timeout only applies with --wait/],
      [["--url", "not a url", "whoami"], /not a URL/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { MUSTER_API_KEY: "msk_x" })));
    results.forEach((result, i) => {
      const [args, message] = cases[i]!;
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(message);
      expect(result.stdout, args.join(" ")).toBe("");
    });
  });
});

describe("configuration and reachability", () => {
  it("exits 3 when no API key is configured, naming the variable", async () => {
    const { code, stderr, stdout } = await runCli(["whoami"], { MUSTER_URL: "http://127.0.0.1:9" });
    expect(code).toBe(3);
    expect(stderr).toBe("error: no API key: set MUSTER_API_KEY (or pass --api-key)\n");
    expect(stdout).toBe("");
  });

  it("exits 3 when the control plane cannot be reached, in one line", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const { code, stderr } = await runCli(["hosts", "list"], { MUSTER_URL: url, MUSTER_API_KEY: "msk_x" });
    expect(code).toBe(3);
    expect(stderr).toMatch(new RegExp(`^error: cannot reach the Muster control plane at ${url}: ECONNREFUSED\\n$`));
  });

  it("gives up on a call after --request-timeout, with exit code 3", async () => {
    // A control plane that accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      const started = Date.now();
      const { code, stderr } = await runCli(["whoami", "--request-timeout", "200ms"], { MUSTER_URL: `http://127.0.0.1:${port}`, MUSTER_API_KEY: "msk_x" });
      expect(code).toBe(3);
      expect(stderr).toMatch(/^error: cannot reach the Muster control plane at .*: timed out after 200 ms\n$/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
