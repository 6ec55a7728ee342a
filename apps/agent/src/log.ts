import { writeSync } from "node:fs";
import type { AgentLogger } from "@muster/sdk";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = "json" | "text";

export interface Logger extends AgentLogger {
  readonly level: LogLevel;
}

const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };
const COLOUR: Record<Exclude<LogLevel, "silent">, string> = { debug: "\x1b[90m", info: "\x1b[32m", warn: "\x1b[33m", error: "\x1b[31m" };

/**
 * JSON lines (one object per line: level, time, msg, then the fields) for
 * journald and log shippers, or a readable line for a terminal. Written
 * synchronously to stdout: nothing is lost when the process exits right after,
 * and there is no worker thread to bundle.
 */
export function createLogger(options: {
  format: LogFormat;
  level: LogLevel;
  colour?: boolean;
  write?: (line: string) => void;
  now?: () => Date;
}): Logger {
  const write = options.write ?? ((line: string) => writeFully(1, line));
  const now = options.now ?? (() => new Date());
  const threshold = RANK[options.level];
  const emit = (level: Exclude<LogLevel, "silent">) => (fields: object, message: string) => {
    if (RANK[level] < threshold) return;
    const time = now();
    if (options.format === "json") {
      write(`${safeJson({ level, time: time.toISOString(), msg: message, ...fields })}\n`);
      return;
    }
    const label = level.toUpperCase().padEnd(5);
    const pairs = Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${formatValue(value)}`)
      .join(" ");
    const head = options.colour ? `${COLOUR[level]}${label}\x1b[0m` : label;
    write(`${time.toISOString().slice(11, 23)} ${head} ${message}${pairs ? `  ${options.colour ? `\x1b[90m${pairs}\x1b[0m` : pairs}` : ""}\n`);
  };
  return { level: options.level, debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

function formatValue(value: unknown): string {
  const text = typeof value === "string" ? value : safeJson(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (v instanceof Error ? v.message : typeof v === "bigint" ? String(v) : v));
  } catch {
    return JSON.stringify(String(value));
  }
}

/** Writes all of `text`, waiting out a full non-blocking pipe; a closed one (EPIPE) drops the line. */
function writeFully(fd: number, text: string): void {
  let buffer = Buffer.from(text);
  for (let attempt = 0; buffer.length > 0 && attempt < 10_000; attempt++) {
    try {
      buffer = buffer.subarray(writeSync(fd, buffer));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
