import type { SQL } from "drizzle-orm";
import type { DbOrTx } from "../services/context.js";

/**
 * Runs a raw statement and returns its rows. The two drivers answer
 * `execute` differently (postgres.js: the rows; PGlite: `{ rows }`); the
 * statement should cast what it selects to text or JSON, which both read alike.
 */
export async function rowsOf<T>(db: DbOrTx, statement: SQL): Promise<T[]> {
  const result = (await db.execute(statement)) as unknown as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}
