import type { Command } from "commander";
import { MusterClient, type RequestOptions } from "@muster/sdk";
import { CliError, EXIT, usageError } from "./exit.js";
import type { SpinnerStream } from "./spinner.js";

/** What the CLI touches outside itself, handed in so it can run under test harnesses too. */
export interface Io {
  stdout: SpinnerStream;
  stderr: SpinnerStream;
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C: every API call and wait listens to it. */
  signal: AbortSignal;
  version: string;
}

export interface GlobalOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
  requestTimeout?: number;
}

/** The control plane's default address (its default PORT), for a local `pnpm start`. */
export const DEFAULT_URL = "http://localhost:8080";

/** One command's view of the invocation: where to print, how, and a client built from flags and environment. */
export class Session {
  readonly json: boolean;
  readonly url: string;
  private readonly options: GlobalOptions;
  private built: MusterClient | undefined;

  constructor(
    readonly io: Io,
    command: Command,
  ) {
    this.options = command.optsWithGlobals<GlobalOptions>();
    this.json = this.options.json === true;
    this.url = this.options.url || io.env.MUSTER_URL || DEFAULT_URL;
  }

  /** Built on first use, so `--help` and usage errors never need a key. */
  client(): MusterClient {
    this.built ??= this.build();
    return this.built;
  }

  private build(): MusterClient {
    let parsed: URL;
    try {
      parsed = new URL(this.url);
    } catch {
      throw usageError(`not a URL: "${this.url}" (from --url or MUSTER_URL)`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`not an http(s) URL: "${this.url}"`);
    const apiKey = this.options.apiKey || this.io.env.MUSTER_API_KEY;
    if (!apiKey) throw new CliError("no API key: set MUSTER_API_KEY (or pass --api-key)", EXIT.unreachable);
    return new MusterClient({
      baseUrl: this.url,
      apiKey,
      userAgent: `muster-cli/${this.io.version}`,
      ...(this.options.requestTimeout ? { timeoutMs: this.options.requestTimeout } : {}),
    });
  }

  /** Options for every call: Ctrl-C cancels it. */
  get call(): RequestOptions {
    return { signal: this.io.signal };
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** Notes for the person at the terminal (empty results, truncation): stderr, so stdout stays data. */
  note(text: string): void {
    this.io.stderr.write(`${text}\n`);
  }

  /**
   * A result: with --json the value itself (pretty on a terminal, one line per
   * document otherwise, so a stream of them is NDJSON); else the human rendering.
   */
  emit(value: unknown, human: () => string): void {
    if (!this.json) return this.out(human());
    this.out(`${JSON.stringify(value, null, this.io.stdout.isTTY ? 2 : undefined)}\n`);
  }
}
