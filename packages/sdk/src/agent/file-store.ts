import * as nodeFs from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { CredentialsFileError, parseStoredCredentials, type CredentialStore, type StoredCredentials } from "./credentials.js";
import { parseCommandOutcomes, type CommandOutcomesDocument, type CommandOutcomeStore } from "./outcomes.js";

/** The file operations the store uses; injectable so tests can make a write fail halfway. */
export type CredentialFs = Pick<
  typeof nodeFs,
  "readFileSync" | "openSync" | "writeSync" | "fsyncSync" | "fchmodSync" | "closeSync" | "renameSync" | "unlinkSync" | "mkdirSync"
>;

/**
 * Credentials in a JSON file of mode 0600, written atomically: a temporary file
 * beside it, fsync, rename over the old one, fsync of the folder. Whatever
 * happens mid-write (crash, power loss, a full disk), the file holds either the
 * previous credentials or the new ones. All I/O is synchronous, so a signal
 * handler never runs in the middle of a write.
 */
export class FileCredentialStore implements CredentialStore {
  readonly description: string;
  private readonly fs: CredentialFs;

  constructor(
    readonly path: string,
    options: { fs?: CredentialFs } = {},
  ) {
    this.description = path;
    this.fs = options.fs ?? nodeFs;
  }

  async load(): Promise<StoredCredentials | null> {
    const text = readUnlessMissing(
      this.fs,
      this.path,
      (error) => new CredentialsFileError("unreadable", `cannot read the credentials file ${this.path}: ${describe(error)}`, { cause: error }),
    );
    if (text === null) return null;
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      throw new CredentialsFileError(
        "corrupt",
        `the credentials file ${this.path} is not valid JSON (${(error as Error).message}); delete it and register again with a new registration token`,
        { cause: error },
      );
    }
    return parseStoredCredentials(document, `the credentials file ${this.path}`);
  }

  async save(credentials: StoredCredentials): Promise<void> {
    try {
      writeAtomically(this.fs, this.path, `${JSON.stringify(credentials, null, 2)}\n`);
    } catch (error) {
      throw new CredentialsFileError("unwritable", `cannot save the credentials file ${this.path}: ${describe(error)}`, { cause: error });
    }
  }

  /** The agent's command outcomes, in a file beside the credentials (`credentials.json` → `credentials.commands.json`). */
  commandOutcomes(): FileCommandOutcomeStore {
    return new FileCommandOutcomeStore(this.path.replace(/(\.json)?$/, ".commands.json"), { fs: this.fs });
  }

  async remove(): Promise<void> {
    try {
      this.fs.unlinkSync(this.path);
    } catch (error) {
      if (errno(error) === "ENOENT") return;
      throw new CredentialsFileError("unwritable", `cannot remove the credentials file ${this.path}: ${describe(error)}`, { cause: error });
    }
    syncDirectory(this.fs, dirname(this.path));
  }
}

/**
 * The agent's command outcomes (see CommandMemory) in a JSON file of mode
 * 0600, written atomically like the credentials.
 */
export class FileCommandOutcomeStore implements CommandOutcomeStore {
  readonly description: string;
  private readonly fs: CredentialFs;

  constructor(
    readonly path: string,
    options: { fs?: CredentialFs } = {},
  ) {
    this.description = path;
    this.fs = options.fs ?? nodeFs;
  }

  async load(): Promise<CommandOutcomesDocument | null> {
    const text = readUnlessMissing(this.fs, this.path, (error) => new Error(`cannot read ${this.path}: ${describe(error)}`, { cause: error }));
    if (text === null) return null;
    return parseCommandOutcomes(JSON.parse(text), this.path);
  }

  async save(document: CommandOutcomesDocument): Promise<void> {
    writeAtomically(this.fs, this.path, `${JSON.stringify(document)}\n`);
  }
}

/** A file's text, or null when there is no file; any other failure is thrown as `refusal` makes it. */
function readUnlessMissing(fs: CredentialFs, path: string, refusal: (error: unknown) => Error): string | null {
  try {
    return fs.readFileSync(path, "utf8");
  } catch (error) {
    if (errno(error) === "ENOENT") return null;
    throw refusal(error);
  }
}

/**
 * Replaces `path` with `data` all at once: a temporary file beside it (mode
 * 0600), fsync, rename over the old one, fsync of the folder. Whatever happens
 * mid-write, the file holds either the old content or the new. Synchronous, so
 * a signal handler never runs in the middle of a write.
 */
function writeAtomically(fs: CredentialFs, path: string, data: string): void {
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  let fd: number | null = null;
  try {
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    fd = fs.openSync(temporary, "wx", 0o600);
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(temporary, path);
  } catch (error) {
    if (fd !== null) ignore(() => fs.closeSync(fd!));
    ignore(() => fs.unlinkSync(temporary));
    throw error;
  }
  syncDirectory(fs, directory);
}

/** Makes a rename durable. Some file systems refuse to fsync a folder; the rename has happened regardless. */
function syncDirectory(fs: CredentialFs, directory: string): void {
  ignore(() => {
    const fd = fs.openSync(directory, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

function describe(error: unknown): string {
  const code = errno(error);
  const reasons: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "it is a directory",
    ENOTDIR: "a parent is not a directory",
    ENOSPC: "no space left on the device",
    EROFS: "the file system is read-only",
  };
  return (code && reasons[code]) ?? (error as Error).message ?? String(error);
}

function ignore(action: () => void): void {
  try {
    action();
  } catch {
    // Best effort: the caller has already decided the outcome.
  }
}
