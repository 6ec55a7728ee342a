import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileCredentialStore } from "@muster/sdk";
import type { AgentConfig } from "../src/cli.js";
import { EXIT } from "../src/exit-codes.js";
import { createLogger } from "../src/log.js";
import { reregistrationAdvice, runAgent } from "../src/run.js";

const HOST_ID = `host-${"c".repeat(26)}`;
const work = mkdtempSync(join(os.tmpdir(), "muster-agent-run-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function config(credentialsFile: string): AgentConfig {
  return {
    // Nothing listens here: the agent channel fails to dial, and heartbeats take HTTP (the fake below).
    controlPlane: "http://127.0.0.1:9",
    registrationToken: null,
    address: null,
    credentialsFile,
    listen: null,
    registerOnly: false,
    repin: false,
    logFormat: "json",
    logLevel: "info",
  };
}

function refused(message: string): Response {
  return new Response(JSON.stringify({ error: { code: "unauthorized", message } }), { status: 401, headers: { "content-type": "application/json" } });
}

describe("muster-agent back after its refresh token expired", () => {
  it("exits with status 5, printing where a new token comes from and the exact command to register again", async () => {
    const credentialsFile = join(work, "credentials.json");
    const longAgo = Date.now() - 100 * 86_400_000;
    await new FileCredentialStore(credentialsFile).save({
      version: 1,
      host_id: HOST_ID,
      control_plane: "http://127.0.0.1:9",
      token: "eyJhbGciOiJFUzI1NiJ9.e30.sig",
      token_expires_at: new Date(longAgo + 3_600_000).toISOString(),
      refresh_token: "mrt_expired",
      refresh_token_expires_at: new Date(longAgo + 90 * 86_400_000).toISOString(),
      heartbeat_interval_s: 30,
      obtained_at: new Date(longAgo).toISOString(),
      address: "10.0.0.7:7070",
    });
    const routes: string[] = [];
    const fetch: typeof globalThis.fetch = async (input) => {
      const path = new URL(String(input)).pathname;
      routes.push(path);
      return refused(
        path.endsWith("/refresh")
          ? "refresh token is invalid, expired or revoked; the host must register again with a new registration token"
          : "host token expired",
      );
    };
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "info", write: (line) => void lines.push(line) });

    const status = await runAgent(config(credentialsFile), { log, onSignal: () => {}, fetch });

    expect(status).toBe(EXIT.reregister);
    expect(routes).toEqual(["/v1/hosts/auth/refresh"]);
    const last = JSON.parse(lines.at(-1)!) as { level: string; msg: string; reason: string };
    expect(last.level).toBe("error");
    expect(last.msg).toContain(`muster hosts token ${HOST_ID}`);
    expect(last.msg).toContain(`POST /v1/hosts/${HOST_ID}/token`);
    expect(last.msg).toContain(`then run: muster-agent --control-plane http://127.0.0.1:9 --register <NEW_TOKEN> --address 10.0.0.7:7070 --credentials-file ${credentialsFile}`);
    expect(last.reason).toMatch(/refused the refresh token.*register again/);
  });
});

describe("re-registration advice", () => {
  it("falls back to a placeholder when the host's address is unknown", () => {
    expect(reregistrationAdvice(HOST_ID, config("/var/lib/muster-agent/credentials.json"), null)).toMatch(
      /--register <NEW_TOKEN> --address <IP:PORT> --credentials-file \/var\/lib\/muster-agent\/credentials\.json$/,
    );
  });
});
