import { ARCH_NAMES } from "@muster/contract";
import { and, inArray, ne, sql } from "drizzle-orm";
import { hosts } from "../db/schema/index.js";
import type { DbOrTx } from "./context.js";

/** `arch`'s canonical name, computed in SQL from the contract's list of names. */
const canonical = sql`case lower(${hosts.arch}) ${sql.join(
  [...ARCH_NAMES].map(([name, to]) => sql`when ${name} then ${to}`),
  sql` `,
)} end`;

/**
 * Hosts registered before arch had one vocabulary (SPEC §8) kept the name
 * their agent sent, e.g. `x86_64` or `aarch64`: rewritten to the canonical
 * name at start, so filters by arch find the whole fleet. Idempotent: once
 * done it finds nothing to change. Data, not schema, so not a migration.
 */
export async function canonicalizeHostArch(db: DbOrTx): Promise<number> {
  const changed = await db
    .update(hosts)
    .set({ arch: canonical })
    .where(and(inArray(sql`lower(${hosts.arch})`, [...ARCH_NAMES.keys()]), ne(hosts.arch, canonical)))
    .returning({ id: hosts.id });
  return changed.length;
}
