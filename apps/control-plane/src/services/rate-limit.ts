import { DomainError } from "../errors.js";
import { rateLimitKey } from "./kv-keys.js";
import type { ServiceDeps } from "./context.js";

const WINDOW_MS = 60_000;

export type LimitedEndpoint = "register" | "refresh";

const WHAT: Record<LimitedEndpoint, string> = { register: "registrations", refresh: "credential refreshes" };

/** One count to keep: at most `limit` requests about `subject` per window (0: no limit). */
export interface LimitCheck {
  kind: string;
  subject: string | null;
  limit: number;
  windowMs: number;
  /** What is counted, for the refusal: "probes of this host". */
  what: string;
}

/**
 * Counts a request against each of its subjects in fixed windows shared by
 * every control-plane process through the KV store, and refuses it (429,
 * Retry-After: until the window ends) once any count is past its limit.
 * Windows are numbered by the injected clock; the KV's TTL only clears old
 * counters away.
 *
 * If the KV store cannot count, the request goes through (with a warning): the
 * limiter guards against floods, and must not itself turn a store outage into
 * refusals; the request's own use of the stores then answers for the outage.
 */
export async function enforceLimits(
  deps: Pick<ServiceDeps, "kv" | "clock" | "logger">,
  endpoint: string,
  all: LimitCheck[],
): Promise<void> {
  const checks = all.filter((check): check is LimitCheck & { subject: string } => check.subject !== null && check.limit > 0 && check.windowMs > 0);
  if (checks.length === 0) return;

  const now = deps.clock.now().getTime();
  const windows = checks.map((check) => Math.floor(now / check.windowMs));
  let counts: number[];
  try {
    counts = await Promise.all(
      checks.map((check, i) => deps.kv.incrWithTtl(rateLimitKey(endpoint, check.kind, check.subject, windows[i]!), check.windowMs)),
    );
  } catch (error) {
    deps.logger.warn({ err: error, endpoint }, "rate limiter cannot reach the KV store; letting the request through unlimited");
    return;
  }
  const exceeded = checks.findIndex((check, i) => counts[i]! > check.limit);
  if (exceeded < 0) return;
  const check = checks[exceeded]!;
  const retryAfterS = Math.max(1, Math.ceil(((windows[exceeded]! + 1) * check.windowMs - now) / 1000));
  const per = check.windowMs === WINDOW_MS ? "a minute" : `per ${check.windowMs / 1000} s`;
  throw new DomainError("rate_limited", `too many ${check.what} (at most ${check.limit} ${per}); retry in ${retryAfterS} s`, retryAfterS);
}

/**
 * Registrations and refreshes, counted against their client address and their
 * token, per endpoint, before the token is looked at, so a refused request
 * spends nothing.
 */
export async function enforceRateLimits(
  deps: Pick<ServiceDeps, "kv" | "clock" | "config" | "logger">,
  endpoint: LimitedEndpoint,
  subjects: { address: string | null; tokenHash: string },
): Promise<void> {
  await enforceLimits(deps, endpoint, [
    { kind: "address", subject: subjects.address, limit: deps.config.rateLimitPerAddress, windowMs: WINDOW_MS, what: `${WHAT[endpoint]} from this address` },
    { kind: "token", subject: subjects.tokenHash, limit: deps.config.rateLimitPerToken, windowMs: WINDOW_MS, what: `${WHAT[endpoint]} with this token` },
  ]);
}

/**
 * A host's refreshes, whichever of its refresh tokens they present (each
 * refresh hands out the next one, so a per-token count alone would let a host
 * chain refreshes, and mint certificates, without end). The same limit as per
 * token: one agent refreshes once every few minutes at most.
 */
export async function enforceHostRefreshLimit(deps: Pick<ServiceDeps, "kv" | "clock" | "config" | "logger">, hostId: string): Promise<void> {
  await enforceLimits(deps, "refresh", [
    { kind: "host", subject: hostId, limit: deps.config.rateLimitPerToken, windowMs: WINDOW_MS, what: "credential refreshes of this host" },
  ]);
}
