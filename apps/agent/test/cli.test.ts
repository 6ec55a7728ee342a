import { describe, expect, it } from "vitest";
import { HELP, parseCommand, UsageError, type AgentConfig } from "../src/cli.js";
import { createLogger } from "../src/log.js";

const CP = "https://muster.example.com";

function config(argv: string[], env: Record<string, string> = {}, tty = false): AgentConfig {
  const command = parseCommand(argv, env, { stdoutIsTty: tty });
  if (command.kind !== "run") throw new Error(`expected a run command, got ${command.kind}`);
  return command.config;
}

function usage(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseCommand(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("parseCommand", () => {
  it("takes the first start's flags", () => {
    expect(config(["--control-plane", CP, "--register", "tok", "--address", "10.0.0.7:7070", "--credentials-file", "/srv/creds.json"])).toEqual({
      controlPlane: CP,
      registrationToken: "tok",
      address: "10.0.0.7:7070",
      credentialsFile: "/srv/creds.json",
      listen: null,
      registerOnly: false,
      repin: false,
      logFormat: "json",
      logLevel: "info",
    });
  });

  it("takes --repin, for a control plane whose certificate key changed on purpose", () => {
    expect(config(["--control-plane", CP, "--repin"])).toMatchObject({ repin: true });
  });

  it("reads every flag from its environment variable", () => {
    expect(
      config([], {
        MUSTER_CONTROL_PLANE: CP,
        MUSTER_REGISTRATION_TOKEN: "tok",
        MUSTER_ADDRESS: "[fd00::7]:7070",
        MUSTER_CREDENTIALS_FILE: "/srv/creds.json",
        MUSTER_LISTEN: "[::1]:7443",
        MUSTER_LOG_FORMAT: "text",
        MUSTER_LOG_LEVEL: "debug",
      }),
    ).toEqual({
      controlPlane: CP,
      registrationToken: "tok",
      address: "[fd00::7]:7070",
      credentialsFile: "/srv/creds.json",
      listen: { host: "::1", port: 7443 },
      registerOnly: false,
      repin: false,
      logFormat: "text",
      logLevel: "debug",
    });
  });

  it("lets a flag win over its environment variable, and ignores empty variables", () => {
    const parsed = config(["--control-plane", CP, "--credentials-file", "/flag.json"], {
      MUSTER_CONTROL_PLANE: "http://env.example",
      MUSTER_CREDENTIALS_FILE: "/env.json",
      MUSTER_REGISTRATION_TOKEN: "",
    });
    expect(parsed).toMatchObject({ controlPlane: CP, credentialsFile: "/flag.json", registrationToken: null });
  });

  it("needs only the control plane on later starts, with a default credentials file", () => {
    expect(config(["--control-plane", CP])).toMatchObject({ registrationToken: null, credentialsFile: "/var/lib/muster-agent/credentials.json" });
    expect(config(["--control-plane", CP], { STATE_DIRECTORY: "/var/lib/muster-agent-2" }).credentialsFile).toBe(
      "/var/lib/muster-agent-2/credentials.json",
    );
  });

  it("logs text on a terminal and JSON lines otherwise, unless told", () => {
    expect(config(["--control-plane", CP], {}, true).logFormat).toBe("text");
    expect(config(["--control-plane", CP], {}, false).logFormat).toBe("json");
    expect(config(["--control-plane", CP, "--log-format", "json"], {}, true).logFormat).toBe("json");
  });

  it("answers --help and --version before checking anything else", () => {
    expect(parseCommand(["--help"], {})).toEqual({ kind: "help" });
    expect(parseCommand(["-h"], {})).toEqual({ kind: "help" });
    expect(parseCommand(["--version"], {})).toEqual({ kind: "version" });
    expect(parseCommand(["-v"], {})).toEqual({ kind: "version" });
    expect(HELP).toContain("MUSTER_REGISTRATION_TOKEN");
  });

  it("says what is wrong with bad flags, all at once", () => {
    expect(usage(["--nope"])).toMatch(/Unknown option '--nope'/);
    expect(usage(["--control-plane", CP, "extra"])).toMatch(/Unexpected argument 'extra'/);
    expect(usage(["--control-plane"])).toMatch(/--control-plane/);
    expect(usage([])).toBe("--control-plane (or MUSTER_CONTROL_PLANE) is required");
    expect(usage(["--control-plane", "muster.example.com"])).toMatch(/must be an http:\/\/ or https:\/\/ URL/);
    expect(usage(["--control-plane", CP, "--register-only"])).toMatch(/--register-only needs --register TOKEN/);
    const many = usage(["--control-plane", CP, "--register", "t", "--log-format", "xml", "--log-level", "loud"]).split("\n");
    expect(many).toEqual([
      expect.stringMatching(/--address \(or MUSTER_ADDRESS\) is required with --register/),
      expect.stringMatching(/--log-format must be json or text \(got "xml"\)/),
      expect.stringMatching(/--log-level must be one of debug, info, warn, error, silent \(got "loud"\)/),
    ]);
  });

  it("checks the address as the control plane would", () => {
    for (const good of ["10.0.0.7:7070", "worker-1.example.com:443", "[2001:db8::1]:8080"]) {
      expect(config(["--control-plane", CP, "--register", "t", "--address", good]).address).toBe(good);
    }
    for (const bad of ["10.0.0.7", ":7070", "10.0.0.7:port", "a b:1"]) {
      expect(usage(["--control-plane", CP, "--register", "t", "--address", bad])).toMatch(/--address must be IP:PORT/);
      expect(usage(["--control-plane", CP, "--listen", bad])).toMatch(/--listen must be IP:PORT/);
    }
  });
});

describe("createLogger", () => {
  const at = () => new Date("2026-03-01T12:34:56.789Z");

  it("writes one JSON object per line: level, time, msg, then the fields", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "info", write: (line) => lines.push(line), now: at });
    log.info({ host_id: "host-x", n: 2 }, "heartbeat accepted");
    log.error({ err: new Error("boom") }, "failed");
    expect(lines).toEqual([
      '{"level":"info","time":"2026-03-01T12:34:56.789Z","msg":"heartbeat accepted","host_id":"host-x","n":2}\n',
      '{"level":"error","time":"2026-03-01T12:34:56.789Z","msg":"failed","err":"boom"}\n',
    ]);
  });

  it("writes readable lines for a terminal, quoting values with spaces", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "text", level: "debug", write: (line) => lines.push(line), now: at });
    log.warn({ err: "connect ECONNREFUSED", retry_in_ms: 1500 }, "heartbeat failed");
    expect(lines).toEqual(['12:34:56.789 WARN  heartbeat failed  err="connect ECONNREFUSED" retry_in_ms=1500\n']);
  });

  it("drops lines below its level", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "warn", write: (line) => lines.push(line), now: at });
    log.debug({}, "d");
    log.info({}, "i");
    log.warn({}, "w");
    expect(lines).toHaveLength(1);
    createLogger({ format: "json", level: "silent", write: (line) => lines.push(line) }).error({}, "e");
    expect(lines).toHaveLength(1);
  });
});
