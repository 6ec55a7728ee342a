import type { Command } from "commander";
import type { Paginator } from "@muster/sdk";
import { positiveInt } from "../parse.js";
import { Session, type Io } from "../session.js";

/**
 * Commander calls an action with the positional arguments, then the
 * command's options, then the command itself. This hands the handler a
 * Session built from that last one (flags merged with the global ones).
 */
export function act<Args extends unknown[]>(io: Io, handler: (session: Session, ...args: Args) => Promise<void>) {
  return async (...raw: unknown[]) => {
    const command = raw[raw.length - 1] as Command;
    await handler(new Session(io, command), ...(raw.slice(0, -1) as Args));
  };
}

export interface ListOptions {
  limit?: number;
  all?: boolean;
}

export const DEFAULT_LIST_LIMIT = 100;
const MAX_PAGE = 500;

export function listOptions(command: Command): Command {
  return command
    .option("--limit <n>", `show at most n (default ${DEFAULT_LIST_LIMIT})`, positiveInt)
    .option("--all", "show every one, fetching as many pages as it takes");
}

/**
 * Walks the API's pages until `--limit` items (or all of them with `--all`).
 * One extra item is asked for, only to tell whether the list was cut short.
 */
export async function collectList<T>(
  session: Session,
  list: (pageSize: number) => Paginator<T>,
  options: ListOptions,
  noun: string,
): Promise<T[]> {
  const limit = options.all ? Number.POSITIVE_INFINITY : (options.limit ?? DEFAULT_LIST_LIMIT);
  const items = await list(Math.min(limit + 1, MAX_PAGE)).toArray({ max: limit + 1 });
  const more = items.length > limit;
  if (more) items.length = limit;
  if (!session.json) {
    if (items.length === 0) session.note(`No ${noun} found.`);
    if (more) session.note(`Showing the first ${limit} ${noun}; use --limit or --all for more.`);
  }
  return items;
}
