import { IDEMPOTENCY_KEY_TTL_S } from "@muster/contract";
import { and, eq, lte, sql } from "drizzle-orm";
import { idempotencyKeys } from "../db/schema/index.js";
import { conflict } from "../errors.js";
import type { DbOrTx } from "./context.js";

/** A request that came with an `Idempotency-Key`: whose key, the key, and what was asked (compared as jsonb). */
export interface IdempotentRequest {
  apiKeyId: string;
  key: string;
  request: Record<string, unknown>;
}

export interface StoredAnswer {
  status: number;
  response: unknown;
}

/**
 * Claims the key for this request inside the caller's transaction, or returns
 * the answer already given for it. A key of this API key seen within its
 * lifetime with another request is a conflict. Of concurrent requests with one
 * key, the database's primary key makes the later ones wait for the first
 * transaction: they get its answer once it commits, or the key once it rolls
 * back. A key past its lifetime is taken over as if it were new.
 */
export async function claimIdempotencyKey(tx: DbOrTx, now: Date, request: IdempotentRequest): Promise<StoredAnswer | null> {
  const expiresAt = new Date(now.getTime() + IDEMPOTENCY_KEY_TTL_S * 1000);
  const claim = { request: request.request, status: 0, response: null, createdAt: now, expiresAt };
  const claimed = await tx
    .insert(idempotencyKeys)
    .values({ apiKeyId: request.apiKeyId, key: request.key, ...claim })
    .onConflictDoUpdate({ target: [idempotencyKeys.apiKeyId, idempotencyKeys.key], set: claim, where: lte(idempotencyKeys.expiresAt, now) })
    .returning({ key: idempotencyKeys.key });
  if (claimed.length > 0) return null;
  const [earlier] = await tx
    .select({
      status: idempotencyKeys.status,
      response: idempotencyKeys.response,
      same: sql<boolean>`${idempotencyKeys.request} = ${JSON.stringify(request.request)}::jsonb`,
    })
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.apiKeyId, request.apiKeyId), eq(idempotencyKeys.key, request.key)));
  if (!earlier?.same) {
    throw conflict("this Idempotency-Key was used for another request within the last 24 hours: use a new key for a new request");
  }
  return { status: earlier.status, response: earlier.response };
}

/** Records the answer for a key claimed in the same transaction. */
export async function saveIdempotentAnswer(tx: DbOrTx, request: IdempotentRequest, answer: StoredAnswer): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ status: answer.status, response: answer.response })
    .where(and(eq(idempotencyKeys.apiKeyId, request.apiKeyId), eq(idempotencyKeys.key, request.key)));
}

/** Forgets keys past their lifetime. */
export async function pruneIdempotencyKeys(db: DbOrTx, now: Date): Promise<void> {
  await db.delete(idempotencyKeys).where(lte(idempotencyKeys.expiresAt, now));
}
