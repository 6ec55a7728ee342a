import { Presets, SingleBar } from "cli-progress";
import { chromium, type Page } from "playwright-core";
import { routes } from "@muster/contract";
import { Transport } from "@muster/sdk";
import { enrollHosts, median, startControlPlane } from "./lib.js";

/**
 * The console with a large fleet: N hosts enrolled through the API (half of
 * them online), then Debian's Chromium times what an operator waits for: the
 * hosts table's first page, the next page, a filter, a hostname search, and
 * the overview, which walks the whole fleet for exact counts. Medians of a few
 * rounds; the table is paginated by the API (50 rows a page), so its pages
 * should not grow with the fleet, and the overview does.
 */
const HOSTS = Number(process.env.CONSOLE_HOSTS ?? 10_000);
const ROUNDS = Number(process.env.CONSOLE_ROUNDS ?? 5);
const CHROMIUM = process.env.MUSTER_CHROMIUM ?? "/usr/bin/chromium";

async function timed(page: Page, act: () => Promise<unknown>, done: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await act();
  await done();
  return performance.now() - started;
}

async function main() {
  // Enrolment from one address at full speed: the per-address registration limit would pace it to 600 a minute.
  const cp = await startControlPlane("console", { MUSTER_RATE_LIMIT_PER_ADDRESS: "0" });
  const started = Date.now();
  const bar = new SingleBar({ format: " enrol hosts |{bar}| {value}/{total}", hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 }, Presets.shades_classic);
  bar.start(HOSTS, 0);
  const hosts = await enrollHosts(cp.url, cp.adminKey, HOSTS, 32, (done) => bar.update(done));
  bar.stop();
  // Half the fleet beats once: online; the rest stays registered but silent (pending).
  for (let i = 0; i < hosts.length; i += 2 * 64) {
    await Promise.all(
      hosts.slice(i, i + 2 * 64).filter((_, j) => j % 2 === 0).map((host) =>
        new Transport({ baseUrl: cp.url, authHeaders: () => ({ "x-host-token": host.token }) }).call(routes.heartbeat, { params: { id: host.id } }),
      ),
    );
  }
  process.stdout.write(`Console with ${HOSTS.toLocaleString("en")} hosts (${Math.ceil(HOSTS / 2).toLocaleString("en")} online), set up in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, chromiumSandbox: false });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Signed in as the console keeps it: the admin key in the tab's sessionStorage.
  await context.addInitScript({ content: `sessionStorage.setItem("muster.console.api_key", ${JSON.stringify(cp.adminKey)});` });
  const page = await context.newPage();
  const rows = () => page.locator("table.hosts tbody tr").first().waitFor();
  const figures: Record<string, number[]> = {};
  const record = (name: string, ms: number) => (figures[name] ??= []).push(ms);

  for (let round = 0; round < ROUNDS; round++) {
    record("hosts table, first page (50 rows), from navigation", await timed(page, () => page.goto(`${cp.url}/console/hosts`), rows));
    record("next page", await timed(page, () => page.getByRole("button", { name: "Next →" }).click(), () => page.getByText("Page 2 ·").waitFor()));
    record("filter: status online", await timed(page, () => page.goto(`${cp.url}/console/hosts?status=online`), rows));
    record("search: hostname prefix", await timed(page, () => page.goto(`${cp.url}/console/hosts?hostname=sim-99`), rows));
    record(
      `overview (walks all ${HOSTS.toLocaleString("en")} hosts, 500 a request)`,
      await timed(page, () => page.goto(`${cp.url}/console`), () => page.getByTestId("total").getByText(String(HOSTS), { exact: true }).waitFor({ timeout: 300_000 })),
    );
  }
  await browser.close();
  await cp.stop();

  process.stdout.write(`\n${"what the operator waits for".padEnd(56)} median ms (of ${ROUNDS})\n`);
  for (const [name, values] of Object.entries(figures)) process.stdout.write(`${name.padEnd(56)} ${median(values).toFixed(0).padStart(8)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
