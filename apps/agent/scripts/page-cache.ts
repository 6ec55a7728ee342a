import { execFileSync } from "node:child_process";

/**
 * Drops a file's pages from the page cache (after writing them back). A file
 * just written sits in the page cache in large folios, which a process that
 * maps it maps whole: the agent's resident set was 8.7 MiB larger run straight
 * from the build's output than after a reboot. Dropped, the file is read back
 * in as the process runs it, as on a host after install.sh (which does the
 * same) or a reboot. Node has no posix_fadvise; coreutils' dd asks for it.
 */
export function dropFromPageCache(path: string): void {
  execFileSync("dd", [`of=${path}`, "oflag=nocache", "conv=notrunc,fdatasync", "count=0", "status=none"]);
}
