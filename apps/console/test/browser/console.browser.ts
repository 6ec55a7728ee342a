import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MusterClient } from "@muster/sdk/client";
import { freePort, startControlPlane, type ControlPlane } from "@muster/testkit";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AGENT, artifactPath, launch, requireBuilt, runShownCommand, screenshotPath, type Browsing, type Offences, type RunningAgent } from "./harness.js";

/*
 * The console in Chromium against a real control plane process, with real
 * muster-agent processes: what an operator does, by role, at a desk (1280 px)
 * and on a phone (390 px), by mouse and by keyboard. Every page must stay on
 * this machine, within its CSP, without an uncaught error.
 */

let cp: ControlPlane;
let browsing: Browsing;
let admin: MusterClient;
let team: { id: string; name: string };
let ownerKey: string;
let memberKey: string;
/** A host of another team: the team's own keys must get 404 for it. */
let foreignHostId: string;
const agents: RunningAgent[] = [];
const offencesSeen: Offences[] = [];

const unique = () => Math.random().toString(36).slice(2, 8);

beforeAll(async () => {
  requireBuilt();
  cp = await startControlPlane({
    // Agents here listen on loopback, which the mTLS probe refuses unless allowed.
    MUSTER_PROBE_ALLOW_CIDRS: "127.0.0.0/8",
    MUSTER_HEARTBEAT_INTERVAL_S: "1",
    MUSTER_OFFLINE_AFTER_S: "4",
  });
  browsing = await launch();
  admin = new MusterClient({ baseUrl: cp.url, apiKey: cp.adminKey });
  ({ team } = await admin.teams.create({ name: `console-${unique()}` }));
  const keyFor = async (role: "owner" | "member") => {
    const { user } = await admin.users.create({ email: `${role}-${unique()}@example.test`, name: role });
    await admin.teams.members.add(team.id, { user_id: user.id, role });
    return (await admin.apiKeys.create({ name: `${role} laptop`, user_id: user.id, team_id: team.id })).key;
  };
  [ownerKey, memberKey] = [await keyFor("owner"), await keyFor("member")];
  const { team: other } = await admin.teams.create({ name: `elsewhere-${unique()}` });
  foreignHostId = (await admin.hosts.create({ type: "byoc", team_id: other.id })).host.id;
});

afterEach(() => {
  // Whatever a test's pages did beyond the rules, it did it during that test.
  for (const offences of offencesSeen.splice(0)) expect(offences).toEqual({ external: [], csp: [], errors: [] });
});

afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.stop()));
  await browsing?.close();
  await cp?.stop();
});

async function open(viewport?: { width: number; height: number }) {
  const opened = await browsing.context(viewport);
  offencesSeen.push(opened.offences);
  return opened;
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.goto(`${cp.url}/console`);
  await page.fill("#api-key", key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Fleet overview" }).waitFor();
}

const nav = (page: Page) => page.getByRole("navigation", { name: "Console" });
const navLinks = async (page: Page) => (await nav(page).getByRole("link").allTextContents()).map((text) => text.trim());

/** A mark the page keeps until it is reloaded: its presence proves a change arrived without one. */
const markPage = (page: Page) => page.evaluate(() => ((window as unknown as { muster_mark: boolean }).muster_mark = true));
const stillMarked = (page: Page) => page.evaluate(() => (window as unknown as { muster_mark?: boolean }).muster_mark === true);

/** Starts an agent for a host created through the API (not through the console). */
async function enrolledAgent(registrationToken: string): Promise<RunningAgent> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "muster-browser-agent-"));
  const child = spawn(AGENT, ["--control-plane", cp.url, "--register", registrationToken, "--address", `127.0.0.1:${port}`], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", MUSTER_CREDENTIALS_FILE: join(dir, "credentials.json"), MUSTER_LOG_FORMAT: "json" },
    stdio: "ignore",
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const agent: RunningAgent = {
    process: child,
    output: () => "",
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  agents.push(agent);
  return agent;
}

describe("an admin, at a desk", () => {
  it("signs in, adds a host, runs the agent with the command shown, sees it online without a reload, probes, pings, tags and deletes it", async () => {
    const { page } = await open();
    await page.goto(`${cp.url}/console`);
    const firstLoad = await page.evaluate(() => {
      const navigation = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
      const scripts = (performance.getEntriesByType("resource") as PerformanceResourceTiming[]).filter((entry) => entry.initiatorType === "script");
      return {
        dom_content_loaded_ms: Math.round(navigation.domContentLoadedEventEnd),
        load_ms: Math.round(navigation.loadEventEnd),
        script_bytes_transferred: scripts.reduce((sum, entry) => sum + entry.encodedBodySize, 0),
        script_bytes_decoded: scripts.reduce((sum, entry) => sum + entry.decodedBodySize, 0),
      };
    });
    writeFileSync(artifactPath("first-load.json"), `${JSON.stringify(firstLoad, null, 2)}\n`);
    expect(firstLoad.script_bytes_transferred).toBeGreaterThan(0);
    expect(firstLoad.script_bytes_transferred).toBeLessThan(200 * 1024);
    await page.screenshot({ path: screenshotPath("sign-in") });

    await signIn(page, cp.adminKey);
    expect(await navLinks(page)).toEqual(["Overview", "Hosts", "Add host", "Audit log", "Teams", "API keys", "Users"]);
    await page.getByTestId("total").waitFor();
    await page.screenshot({ path: screenshotPath("overview") });

    await nav(page).getByRole("link", { name: "Add host" }).click();
    await page.fill("#host-tags", "e2e browser");
    await page.getByRole("button", { name: "Create host and token" }).click();
    await page.locator("#agent-command").waitFor();
    const hostId = (await page.locator("main a.mono").first().textContent())!.trim();
    await page.fill("#agent-address", `127.0.0.1:${await freePort()}`);
    const command = (await page.locator("#agent-command").textContent())!.trim();
    expect(command).toContain(`--control-plane ${cp.url} --register `);
    await markPage(page);
    const agent = runShownCommand(command);
    agents.push(agent);
    await page.getByTestId("enrollment-status").getByText("Online.").waitFor({ timeout: 30_000 });
    expect(await stillMarked(page)).toBe(true);
    await page.screenshot({ path: screenshotPath("add-host-online"), fullPage: true });

    await page.getByRole("link", { name: "Open the host →" }).click();
    await page.getByRole("heading", { name: "Machine" }).waitFor();
    expect(page.url()).toBe(`${cp.url}/console/hosts/${hostId}`);

    await page.getByRole("button", { name: "Probe over mTLS" }).click();
    await page.getByTestId("probe-result").getByText(/^Reachable in \d+ ms$/).waitFor({ timeout: 15_000 });

    await page.getByRole("button", { name: "Send ping" }).click();
    await page.locator("table.commands tbody tr").filter({ hasText: "ping" }).filter({ hasText: "succeeded" }).waitFor({ timeout: 20_000 });

    await page.fill("#new-tag", "pinged");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.getByRole("list", { name: "Tags" }).getByText("pinged").waitFor();
    await page.getByRole("button", { name: "Remove tag browser" }).click();
    await page.getByRole("button", { name: "Remove tag browser" }).waitFor({ state: "detached" });
    expect(await admin.hosts.tags.list(hostId)).toEqual(["e2e", "pinged"]);
    await page.screenshot({ path: screenshotPath("host-detail"), fullPage: true });

    await page.getByRole("button", { name: "Delete host" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL(`${cp.url}/console/hosts?deleted=${hostId}`);
    await page.getByText(`Host ${hostId} was deleted`).waitFor();
    expect(await page.locator(`tr[data-host="${hostId}"]`).count()).toBe(0);
    await page.screenshot({ path: screenshotPath("hosts-after-delete") });
    // The agent learns it at its next heartbeat: its credentials are gone, and it says so by exiting 6.
    expect(await Promise.race([agent.exited, new Promise((resolve) => setTimeout(() => resolve("still running"), 15_000))])).toBe(6);
  });

  it("sees a host turn offline in the hosts table from the event stream, without a reload or polling, and again after the control plane restarts", async () => {
    const tag = `live-${unique()}`;
    const created = await admin.hosts.create({ type: "byoc", team_id: team.id, tags: [tag] });
    const agent = await enrolledAgent(created.registration_token);
    const { page } = await open();
    const listLoads: number[] = [];
    const streams: { url: string; headers: Record<string, string> }[] = [];
    page.on("request", async (request) => {
      const url = new URL(request.url());
      if (url.pathname === "/v1/hosts" && request.method() === "GET") listLoads.push(Date.now());
      if (url.pathname === "/v1/events") streams.push({ url: request.url(), headers: await request.allHeaders() });
    });
    await signIn(page, cp.adminKey);
    await page.goto(`${cp.url}/console/hosts?tag=${tag}`);
    const row = page.locator(`tr[data-host="${created.host.id}"]`);
    await row.getByText("online").waitFor({ timeout: 20_000 });
    await markPage(page);

    // Quiet (no event, no load) for 1.5 s, then 4.5 s more: polling every 3 s, as the console did before the stream, would load the list here.
    await expect.poll(() => Date.now() - (listLoads.at(-1) ?? 0), { timeout: 15_000 }).toBeGreaterThan(1_500);
    const loadsBefore = listLoads.length;
    await page.waitForTimeout(4_500);
    expect(listLoads.length).toBe(loadsBefore);

    await agent.stop();
    await row.getByText("offline").waitFor({ timeout: 20_000 });
    expect(listLoads.length).toBeGreaterThan(loadsBefore);
    expect(await stillMarked(page)).toBe(true);
    await page.screenshot({ path: screenshotPath("hosts-live-offline") });

    // The stream carries the key in its Authorization header, never in its address.
    expect(streams.length).toBeGreaterThan(0);
    for (const stream of streams) {
      expect(stream.headers.authorization).toBe(`Bearer ${cp.adminKey}`);
      expect(stream.url).not.toContain(cp.adminKey);
    }

    // A restarted control plane drops the stream; the console reconnects, resuming after the last event it had.
    const streamsBefore = streams.length;
    await cp.restart();
    await admin.hosts.tags.add(created.host.id, "after-restart");
    await row.getByText("after-restart").waitFor({ timeout: 30_000 });
    expect(await stillMarked(page)).toBe(true);
    expect(streams.slice(streamsBefore).some((stream) => /^\d+$/.test(stream.headers["last-event-id"] ?? ""))).toBe(true);
  });

  it("creates an API key that is shown once and works, and a team with a member", async () => {
    const { page } = await open();
    await signIn(page, cp.adminKey);
    await nav(page).getByRole("link", { name: "API keys" }).click();
    await page.fill("#key-name", "made in the console");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.locator("#new-api-key").textContent())!.trim();
    expect((await new MusterClient({ baseUrl: cp.url, apiKey: key }).me()).role).toBe("admin");
    await page.screenshot({ path: screenshotPath("api-keys"), fullPage: true });
    await page.reload();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    expect(await page.content()).not.toContain(key);

    await nav(page).getByRole("link", { name: "Teams" }).click();
    const name = `made-${unique()}`;
    await page.fill("#team-name", name);
    await page.getByRole("button", { name: "Create team" }).click();
    await page.getByRole("link", { name }).click();
    const { user } = await admin.users.create({ email: `newcomer-${unique()}@example.test` });
    await page.fill("#member-user", user.id);
    await page.getByRole("button", { name: "Add member" }).click();
    await page.locator("tbody tr").filter({ hasText: user.id }).waitFor();
    await page.screenshot({ path: screenshotPath("team"), fullPage: true });
  });
});

describe("roles", () => {
  it("offers a team owner what an owner may do, and no more", async () => {
    const created = await admin.hosts.create({ type: "byoc", team_id: team.id, tags: ["owned"] });
    const { page } = await open();
    await signIn(page, ownerKey);
    expect(await navLinks(page)).toEqual(["Overview", "Hosts", "Add host", "Audit log", "Teams", "API keys"]);
    await page.goto(`${cp.url}/console/hosts/${created.host.id}`);
    await page.getByRole("heading", { name: "Machine" }).waitFor();
    for (const name of ["Send ping", "Probe over mTLS", "Delete host", "New registration token", "Add"]) {
      expect(await page.getByRole("button", { name, exact: true }).count(), name).toBe(1);
    }
    await page.getByRole("heading", { name: "Audit trail" }).waitFor();
    await page.screenshot({ path: screenshotPath("host-detail-owner"), fullPage: true });

    await page.goto(`${cp.url}/console/users`);
    await page.getByRole("alert").getByText("Your role does not allow this").waitFor();
    await page.screenshot({ path: screenshotPath("users-owner-403") });
  });

  it("shows a member their team's hosts read-only, and the API's 403 and 404 in words, never a blank page", async () => {
    const created = await admin.hosts.create({ type: "byoc", team_id: team.id, tags: ["read-only"] });
    const sent = await admin.hosts.commands.send(created.host.id, { type: "ping", timeout_s: 60 });
    const { page } = await open();
    await signIn(page, memberKey);
    expect(await navLinks(page)).toEqual(["Overview", "Hosts", "Teams", "API keys"]);

    await page.goto(`${cp.url}/console/hosts/${created.host.id}`);
    await page.getByRole("heading", { name: "Machine" }).waitFor();
    await page.getByRole("list", { name: "Tags" }).getByText("read-only").waitFor();
    for (const name of ["Send ping", "Probe over mTLS", "Delete host", "New registration token", "Add", "Remove tag read-only"]) {
      expect(await page.getByRole("button", { name, exact: true }).count(), name).toBe(0);
    }
    expect(await page.getByRole("heading", { name: "Audit trail" }).count()).toBe(0);
    // Commands are read by anyone who may read the host (the list), sent only by owners.
    await page.locator(`table.commands tbody tr[data-command="${sent.id}"]`).filter({ hasText: "queued" }).waitFor();
    await page.screenshot({ path: screenshotPath("host-detail-member"), fullPage: true });

    await page.goto(`${cp.url}/console/audit`);
    await page.getByRole("alert").getByText("Your role does not allow this").waitFor();
    expect(await page.getByRole("alert").textContent()).toContain("403 forbidden");
    await page.screenshot({ path: screenshotPath("audit-member-403") });

    await page.goto(`${cp.url}/console/hosts/${foreignHostId}`);
    await page.getByRole("alert").getByText("Host not found", { exact: true }).waitFor();
    expect(await page.getByRole("alert").textContent()).toContain("404 not_found");
    await page.screenshot({ path: screenshotPath("host-404") });

    await page.goto(`${cp.url}/console/hosts/new`);
    await page.getByRole("alert").getByText("Your role does not allow this").waitFor();
  });

  it("signs out, and a revoked key signs the console out with the reason", async () => {
    const { key, api_key } = await admin.apiKeys.create({ name: `short-lived-${unique()}` });
    const { page } = await open();
    await signIn(page, key);
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual(["muster.console.api_key"]);
    expect(page.url()).not.toContain(key);
    expect(await page.context().cookies()).toEqual([]);
    await admin.apiKeys.revoke(api_key.id);
    await nav(page).getByRole("link", { name: "Hosts" }).click();
    await page.getByText("The API key is no longer accepted: sign in again.").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await signIn(page, cp.adminKey);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });
});

describe("every page", () => {
  const PAGES = ["", "/hosts", "/hosts/new", "/audit", "/teams", "/api-keys", "/users"];

  it.each([
    ["desktop", { width: 1280, height: 900 }],
    ["phone", { width: 390, height: 844 }],
  ])("is readable on a %s: a heading, nothing wider than the screen", async (device, viewport) => {
    const created = await admin.hosts.create({ type: "byoc", team_id: team.id, tags: ["gpu", "zone:eu-1"] });
    const { page } = await open(viewport);
    await signIn(page, cp.adminKey);
    for (const path of [...PAGES, `/hosts/${created.host.id}`, `/teams/${team.id}`]) {
      await page.goto(`${cp.url}/console${path}`);
      await page.locator("main h1").waitFor();
      // Not "networkidle": the page's event stream stays open for as long as it is shown.
      await expect.poll(() => page.locator("main").getByText(/Loading .*…/).count()).toBe(0);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${path || "/"} is ${overflow} px wider than the screen`).toBeLessThanOrEqual(0);
      const name = path.replace(/host-[a-z2-7]+/, "host").replace(/team-[a-z2-7]+/, "team").replaceAll("/", "-").replace(/^-/, "") || "overview";
      await page.screenshot({ path: screenshotPath(`${device}-${name}`), fullPage: true });
    }
  });

  it("works from the keyboard: sign in, skip to content, follow the menu, open and cancel a confirmation", async () => {
    const created = await admin.hosts.create({ type: "byoc", team_id: team.id });
    const { page } = await open();
    await page.goto(`${cp.url}/console`);
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("api-key");
    await page.keyboard.type(cp.adminKey);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Fleet overview" }).waitFor();

    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
    const tabTo = async (text: string) => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press("Tab");
        if ((await page.evaluate(() => document.activeElement?.textContent?.trim())) === text) return;
      }
      throw new Error(`Tab never reached "${text}"`);
    };
    await tabTo("Hosts");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Hosts" }).waitFor();
    expect(page.url()).toBe(`${cp.url}/console/hosts`);
    // Following a link puts the keyboard at the new page's start, not back in the menu.
    await expect.poll(() => page.evaluate(() => document.activeElement?.closest("main")?.id)).toBe("main");

    await page.goto(`${cp.url}/console/hosts/${created.host.id}`);
    await page.getByRole("heading", { name: "Machine" }).waitFor();
    await tabTo("Delete host");
    await page.keyboard.press("Enter");
    await page.getByRole("dialog").waitFor();
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Cancel");
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    expect((await admin.hosts.get(created.host.id)).id).toBe(created.host.id);
  });
});
