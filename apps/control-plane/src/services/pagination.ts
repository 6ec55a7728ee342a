import { and, eq, gt, lt, or, type AnyColumn, type SQL } from "drizzle-orm";
import { ANY_ID_PATTERN } from "@muster/contract";
import { invalid } from "../errors.js";

const ANY_ID = new RegExp(ANY_ID_PATTERN);

/** Keyset position in a list ordered by (time, id); opaque to clients. */
export interface Cursor {
  at: Date;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.at.toISOString(), cursor.id])).toString("base64url");
}

export function decodeCursor(raw: string | undefined): Cursor | null {
  if (raw === undefined) return null;
  try {
    const [at, id] = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as unknown[];
    const date = new Date(String(at));
    // Cursors come back from clients: hold them to what this API could have issued before they reach SQL.
    const year = date.getUTCFullYear();
    if (typeof id !== "string" || !ANY_ID.test(id) || Number.isNaN(date.getTime()) || year < 2000 || year > 9999) {
      throw new Error("bad cursor");
    }
    return { at: date, id };
  } catch {
    throw invalid("cursor: not a cursor this API returned; start again without it");
  }
}

/** Callers fetch limit + 1 rows; the extra one only tells whether another page exists. */
export function paginate<Row>(rows: Row[], limit: number, position: (row: Row) => Cursor) {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const next_cursor = rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null;
  return { page, next_cursor };
}

/** Where a row created at `createdAt` with `id` sits in a (time, id) ordered list. */
export const byCreation = (row: { createdAt: Date; id: string }): Cursor => ({ at: row.createdAt, id: row.id });

/** Rows strictly past the cursor in (time, id) order: ascending lists go forward, descending ones back. */
export function pastCursor(cursor: Cursor | null, at: AnyColumn, id: AnyColumn, direction: "asc" | "desc"): SQL | undefined {
  if (!cursor) return undefined;
  const beyond = direction === "asc" ? gt : lt;
  return or(beyond(at, cursor.at), and(eq(at, cursor.at), beyond(id, cursor.id)));
}
