import { writeFileSync } from "node:fs";
import { routes, type RouteDef } from "@muster/contract";
import { startControlPlane, type ControlPlane } from "@muster/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactPath, launch, requireBuilt, screenshotPath, type Browsing } from "./harness.js";

let cp: ControlPlane;
let browsing: Browsing;

beforeAll(async () => {
  requireBuilt();
  cp = await startControlPlane();
  browsing = await launch();
});
afterAll(async () => {
  await browsing?.close();
  await cp?.stop();
});

const ALL_ROUTES = Object.values(routes) as RouteDef[];

describe("the API reference at /docs", () => {
  it("renders every operation of the contract with every request beyond this machine blocked, and breaks no rule of its CSP", async () => {
    const { page, offences } = await browsing.context();
    await page.goto(`${cp.url}/docs`);
    // The sidebar names every operation at once (every tag open)…
    const summaries = ALL_ROUTES.map((route) => route.summary);
    await page.waitForFunction((expected) => expected.every((text) => document.body.innerText.includes(text)), summaries, { timeout: 30_000 });
    await page.screenshot({ path: screenshotPath("docs") });

    // …and the reference renders each one's section as it is scrolled to: its method and path.
    const wanted = ALL_ROUTES.map((route) => `${route.method.toUpperCase()} ${route.path}`);
    const seen = new Set<string>();
    for (let step = 0; step < 400 && wanted.some((operation) => !seen.has(operation)); step++) {
      const { lines, atBottom } = await page.evaluate(() => {
        window.scrollBy(0, window.innerHeight * 0.8);
        return { lines: document.body.innerText.split("\n").map((line) => line.trim()), atBottom: window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 4 };
      });
      lines.forEach((line, i) => {
        const method = (lines[i - 1] ?? "").replace(/^DEL$/, "DELETE");
        if (line.startsWith("/")) seen.add(`${method} ${line}`);
      });
      if (atBottom) break;
      await page.waitForTimeout(50);
    }
    expect(wanted.filter((operation) => !seen.has(operation))).toEqual([]);
    expect(offences).toEqual({ external: [], csp: [], errors: [] });
    writeFileSync(artifactPath("docs-operations.json"), JSON.stringify([...seen].filter((line) => wanted.includes(line)), null, 2));
  });

  it("serves the page with a policy that allows no script but its own and no connection but to the control plane", async () => {
    const { page } = await browsing.context();
    const response = await page.goto(`${cp.url}/docs`);
    const csp = response!.headers()["content-security-policy"]!;
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("connect-src 'self';");
    expect(response!.headers()["x-frame-options"]).toBe("DENY");
  });
});
