import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@muster/testkit";
import type { TestProject } from "vitest/node";
import { services } from "../support/redis-server.js";
import { CP_MAIN, AGENT_MAIN, type FaultRecord, type FaultServices } from "./harness.js";

declare module "vitest" {
  export interface ProvidedContext {
    faults: FaultServices;
  }
}

/**
 * Starts the suite's own throwaway PostgreSQL + Redis (scripts/services.sh, on
 * free ports), and at the end stops them and prints what was injected and what
 * was observed, from the records the scenarios wrote.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  for (const built of [CP_MAIN, AGENT_MAIN]) {
    if (!existsSync(built)) throw new Error(`${built} is missing: run pnpm build first (pnpm test:faults does)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "muster-faults-"));
  // mkdtemp makes it 0700; PostgreSQL runs as its own user and must reach its folder inside.
  chmodSync(dir, 0o755);
  const pgPort = await freePort();
  const redisPort = await freePort();
  const printed = services(["start", join(dir, "services")], { PG_PORT: pgPort, REDIS_PORT: redisPort });
  const urls = Object.fromEntries(printed.trim().split("\n").map((line) => line.split(/=(.*)/s).slice(0, 2)));
  const reportFile = join(dir, "report.jsonl");
  project.provide("faults", {
    servicesDir: join(dir, "services"),
    pgPort,
    redisPort,
    databaseUrl: urls.DATABASE_URL!,
    redisUrl: urls.REDIS_URL!,
    workDir: dir,
    reportFile,
  });

  return () => {
    services(["stop", join(dir, "services")]);
    const records = existsSync(reportFile)
      ? readFileSync(reportFile, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as FaultRecord)
      : [];
    process.stdout.write(`\n${formatReport(records)}\n`);
    // Kept on failure, for the store and process logs.
    if (records.every((record) => record.verdict === "held")) rmSync(dir, { recursive: true, force: true });
    else process.stdout.write(`logs kept in ${dir}\n`);
  };
}

function formatReport(records: FaultRecord[]): string {
  const rows = [["scenario", "injection", "observation", "verdict"], ...records.map((r) => [r.scenario, r.injection, r.observations.join("; "), r.verdict])];
  const widths = [0, 1, 2, 3].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`;
  const rule = `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`;
  return ["Fault suite report", "", line(rows[0]!), rule, ...rows.slice(1).map(line)].join("\n");
}
