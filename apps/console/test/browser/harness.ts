import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/** Debian's Chromium (apt-get install -y chromium); Playwright's own browser download is not used. */
export const CHROMIUM = process.env.MUSTER_CHROMIUM ?? "/usr/bin/chromium";
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
export const AGENT = join(REPO, "apps/agent/dist/muster-agent");
export const CONSOLE_DIST = join(REPO, "apps/console/dist/index.html");

/** Screenshots and figures of a run, for people to look at: gitignored. */
const ARTIFACTS = join(REPO, "apps/console/test-results");

export function requireBuilt(): void {
  const missing = [CONSOLE_DIST, AGENT].filter((file) => !existsSync(file));
  if (missing.length > 0) throw new Error(`not built: ${missing.join(", ")}; run 'pnpm build' first (pnpm test:browser does)`);
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set MUSTER_CHROMIUM)`);
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

/** What a page did that it should not: requests beyond this machine, CSP violations, uncaught errors. */
export interface Offences {
  external: string[];
  csp: string[];
  errors: string[];
}

export interface Browsing {
  browser: Browser;
  /** A fresh context (its own sessionStorage) at the given size, with every non-loopback request blocked and recorded. */
  context(viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page; offences: Offences }>;
  close(): Promise<void>;
}

export async function launch(): Promise<Browsing> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // CI runs as root, where Chromium's sandbox cannot start.
    chromiumSandbox: false,
    // Below the per-request block: no name but loopback resolves, so nothing leaves the machine even unseen.
    args: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1", "--disable-background-networking", "--disable-component-update"],
  });
  const contexts: BrowserContext[] = [];
  return {
    browser,
    async context(viewport = { width: 1280, height: 900 }) {
      const context = await browser.newContext({ viewport, serviceWorkers: "block" });
      contexts.push(context);
      const offences: Offences = { external: [], csp: [], errors: [] };
      await context.route("**/*", async (route) => {
        const url = new URL(route.request().url());
        if (url.protocol === "data:" || url.protocol === "blob:" || LOOPBACK.test(url.hostname)) return route.continue();
        offences.external.push(url.href);
        return route.abort("blockedbyclient");
      });
      const page = await context.newPage();
      page.on("console", (message) => {
        if (/Content Security Policy/i.test(message.text())) offences.csp.push(message.text());
      });
      page.on("pageerror", (error) => offences.errors.push(error.message));
      return { context, page, offences };
    },
    async close() {
      await Promise.all(contexts.map((context) => context.close().catch(() => {})));
      await browser.close();
    },
  };
}

/** Where a test leaves a file for people to look at; the folder is made on demand (a fresh clone has none). */
export function artifactPath(name: string): string {
  const path = join(ARTIFACTS, name);
  mkdirSync(dirname(path), { recursive: true });
  return path;
}

export function screenshotPath(name: string): string {
  return artifactPath(`screenshots/${name}.png`);
}

export interface RunningAgent {
  process: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * Runs the command the console showed, as an operator would paste it on the
 * machine; only the executable's path (./muster-agent) is this repository's
 * build, and the credentials go to a scratch folder.
 */
export function runShownCommand(command: string): RunningAgent {
  const words = command.split(/\s+/).map((word) => word.replace(/^'(.*)'$/, "$1"));
  expect0(words[0] === "./muster-agent", `the console's command should start with ./muster-agent: ${command}`);
  const dir = mkdtempSync(join(tmpdir(), "muster-browser-agent-"));
  const child = spawn(AGENT, words.slice(1), {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", MUSTER_CREDENTIALS_FILE: join(dir, "credentials.json"), MUSTER_LOG_FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    process: child,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function expect0(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}
