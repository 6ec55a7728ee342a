import type { RouteDef } from "@muster/contract";
import type { TObject, TSchema } from "@sinclair/typebox";
import { MusterError } from "../errors.js";
import type { CallInput, RequestOptions, Transport } from "../transport.js";
import type { QueryOf, ResponseOf } from "./types.js";

/** A route of the contract that answers `{items, next_cursor}` and takes `limit`/`cursor`. */
export type ListRoute = RouteDef & { query: TObject; response: TSchema };

/** One page of a list route, exactly as the API serves it. */
export type PageOf<R extends ListRoute> = ResponseOf<R>;

/** The element type of a list route's `items`. */
export type ItemOf<R extends ListRoute> = ResponseOf<R> extends { items: Array<infer T> } ? T : never;

/** A list route's query without the cursor, which the iterator owns; `limit` is the page size. */
export type ListFilters<R extends ListRoute> = Omit<QueryOf<R>, "cursor">;

interface RawPage<T> {
  items: T[];
  next_cursor: string | null;
}

/**
 * A lazily fetched, cursor-paginated list. Nothing is requested until it is
 * iterated; `for await` yields items across pages, `pages()` yields whole
 * pages, and each iteration starts again from the first page.
 */
export class Paginator<T> implements AsyncIterable<T> {
  constructor(private readonly fetchPage: (cursor: string | undefined) => Promise<RawPage<T>>) {}

  async *pages(): AsyncGenerator<RawPage<T>, void, undefined> {
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (;;) {
      const page = await this.fetchPage(cursor);
      yield page;
      if (page.next_cursor === null) return;
      // A cursor that comes back twice would loop for ever; an API bug should fail loudly instead.
      if (seen.has(page.next_cursor)) throw new MusterError("pagination did not advance: the API returned a cursor twice");
      seen.add(page.next_cursor);
      cursor = page.next_cursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.items;
  }

  /** Collects the items, stopping after `max` of them (and fetching no page beyond). */
  async toArray(options: { max?: number } = {}): Promise<T[]> {
    const max = options.max ?? Number.POSITIVE_INFINITY;
    const items: T[] = [];
    if (max <= 0) return items;
    for await (const item of this) {
      items.push(item);
      if (items.length >= max) break;
    }
    return items;
  }
}

/** The one pagination helper: any list route of the contract becomes a Paginator of its items (`params`: its path's, if any). */
export function paginate<R extends ListRoute>(
  transport: Transport,
  route: R,
  filters: ListFilters<R> | undefined,
  options: RequestOptions = {},
  params?: Record<string, string>,
): Paginator<ItemOf<R>> {
  return new Paginator<ItemOf<R>>(async (cursor) => {
    // Widened to any list route: the caller's `filters` were already checked against R's own query type.
    const input = { ...(params ? { params } : {}), query: { ...(filters as object), cursor } } as CallInput<ListRoute>;
    return (await transport.call<ListRoute>(route, input, options)) as RawPage<ItemOf<R>>;
  });
}
