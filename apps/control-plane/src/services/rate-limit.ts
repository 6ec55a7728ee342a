import { DomainError } from "../errors.js";
import { rateLimitKey } from "./kv-keys.js";
import type { ServiceDeps } from "./context.js";

const WINDOW_MS = 60_000;

export type LimitedEndpoint = "register" | "refresh";

const WHAT: Record<LimitedEndpoint, string> = { register: "registrations", refresh: "credential refreshes" };

/**
 * Counts a request against its client address and its token, per endpoint, in
 * fixed one-minute windows shared by every control-plane process through the
 * KV store, and refuses it (429, Retry-After: until the window ends) once
 * either count is past its limit. Runs before the token is looked at, so a
 * refused request spends nothing. Windows are numbered by the injected clock;
 * the KV's TTL only clears old counters away.
 *
 * If the KV store cannot count, the request goes through (with a warning): the
 * limiter guards against floods, and must not itself turn a store outage into
 * refusals; the request's own use of the stores then answers for the outage.
 */
export async function enforceRateLimits(
  deps: Pick<ServiceDeps, "kv" | "clock" | "config" | "logger">,
  endpoint: LimitedEndpoint,
  subjects: { address: string | null; tokenHash: string },
): Promise<void> {
  const checks = [
    { kind: "address", subject: subjects.address, limit: deps.config.rateLimitPerAddress, from: "from this address" },
    { kind: "token", subject: subjects.tokenHash, limit: deps.config.rateLimitPerToken, from: "with this token" },
  ].filter((check): check is typeof check & { subject: string } => check.subject !== null && check.limit > 0);
  if (checks.length === 0) return;

  const now = deps.clock.now().getTime();
  const window = Math.floor(now / WINDOW_MS);
  let counts: number[];
  try {
    counts = await Promise.all(checks.map((check) => deps.kv.incrWithTtl(rateLimitKey(endpoint, check.kind, check.subject, window), WINDOW_MS)));
  } catch (error) {
    deps.logger.warn({ err: error, endpoint }, "rate limiter cannot reach the KV store; letting the request through unlimited");
    return;
  }
  const exceeded = checks.find((check, i) => counts[i]! > check.limit);
  if (!exceeded) return;
  const retryAfterS = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
  throw new DomainError(
    "rate_limited",
    `too many ${WHAT[endpoint]} ${exceeded.from} (at most ${exceeded.limit} a minute); retry in ${retryAfterS} s`,
    retryAfterS,
  );
}
