import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** The data folder cannot be used safely: the message names it and says what to do. */
export class DataDirError extends Error {}

const OWNER_ONLY_FOLDER = 0o700;
const OWNER_ONLY_FILE = 0o600;

/**
 * Makes the data folder (0700) or checks the one there: a folder another user
 * owns or can write into refuses the start, since whatever it holds may have
 * been put there or swapped by someone else.
 */
export function claimDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: OWNER_ONLY_FOLDER });
  const stat = statSync(dir);
  if (!stat.isDirectory()) throw new DataDirError(`MUSTER_DATA_DIR ${dir} is not a folder`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new DataDirError(`the data folder ${dir} belongs to another user (uid ${stat.uid}); run Muster as its owner, or give it a folder of its own in MUSTER_DATA_DIR`);
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new DataDirError(
      `the data folder ${dir} can be written by other users (mode ${modeOf(stat.mode)}), so what it holds cannot be trusted; ` +
        `check its contents, make it owner-only (chmod 700 ${dir}) and start again`,
    );
  }
  chmodSync(dir, OWNER_ONLY_FOLDER);
}

/** Brings everything in the data folder to owner-only: folders 0700, files 0600. Symbolic links are left as they are. */
export function restrictDataDir(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      restrict(path, OWNER_ONLY_FOLDER);
      restrictDataDir(path);
    } else if (entry.isFile()) {
      restrict(path, OWNER_ONLY_FILE);
    }
  }
}

function restrict(path: string, mode: number): void {
  if ((lstatSync(path).mode & 0o777) !== mode) chmodSync(path, mode);
}

function modeOf(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}
