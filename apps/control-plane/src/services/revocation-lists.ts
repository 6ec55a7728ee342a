import { setImmediate as nextTurn } from "node:timers/promises";
import { and, asc, eq, gt, isNotNull } from "drizzle-orm";
import { hostCertificates } from "../db/schema/index.js";
import type { Subscription } from "../kv/kv.js";
import type { CertificateAuthority } from "../pki/ca.js";
import { jsonStringContents, splitCrls, type RevokedEntry } from "../pki/crl.js";
import type { DbOrTx, ServiceDeps } from "./context.js";
import { CRL_CHANGES_CHANNEL, CRL_KEY } from "./kv-keys.js";

/**
 * Rows read per query while collecting the list. The embedded database runs
 * each query on the event loop, and its queries resolve with no turn of the
 * loop in between: a long list is read in short steps, with a turn after
 * each, so requests are answered meanwhile.
 */
const PAGE = 250;
/** A list is built again after this long even with no change, so expired entries leave it and nextUpdate stays far. */
const REFRESH_MAX_MS = 60 * 60 * 1000;

/**
 * The signed lists as served: one per trusted CA, concatenated in the order of
 * the CA bundle (TLS checks each certificate against its issuer's list), and
 * the whole JSON answer of GET /v1/ca/crl encoded once.
 */
export interface ServedList {
  id: string;
  /** The CAs whose lists these are, as `CaKeyring.trusted` names them (`ca,ca-…`). */
  caIds: string;
  pem: string;
  /** Each CA's list apart: Node's TLS reads only the first CRL of a string, so a TLS context is given them one by one. */
  crls: string[];
  /** The PEM as the contents of a JSON string, for answers that embed it (register, refresh). */
  pemJson: string;
  body: Buffer;
  etag: string;
  thisUpdate: Date;
  nextUpdate: Date;
}

interface SharedList {
  id: string;
  caIds: string;
  thisUpdate: Date;
  nextUpdate: Date;
  pem: string;
}

function trustedIds(authorities: readonly CertificateAuthority[]): string {
  return authorities.map((ca) => ca.id).join(",");
}

// Stored as lines rather than JSON: stringifying a 5 MB PEM would hold the event loop ~65 ms.
function encodeShared(list: SharedList): string {
  return `${list.id}\n${list.caIds}\n${list.thisUpdate.toISOString()}\n${list.nextUpdate.toISOString()}\n${list.pem}`;
}

function decodeShared(raw: string): SharedList | null {
  const [id, caIds, thisUpdate, nextUpdate] = raw.slice(0, 300).split("\n");
  const pemAt = raw.indexOf("-----BEGIN");
  if (!id || !caIds || !thisUpdate || !nextUpdate || pemAt < 0) return null;
  return { id, caIds, thisUpdate: new Date(thisUpdate), nextUpdate: new Date(nextUpdate), pem: raw.slice(pemAt) };
}

/** One CA's revocation list: the certificates it issued that are revoked and have not expired yet (an expired one is refused anyway). */
async function revokedEntries(db: DbOrTx, caId: string, now: Date): Promise<RevokedEntry[]> {
  const entries: RevokedEntry[] = [];
  for (let after = ""; ; ) {
    const page = await db
      .select({ serial: hostCertificates.serial, revokedAt: hostCertificates.revokedAt })
      .from(hostCertificates)
      .where(
        and(eq(hostCertificates.caId, caId), isNotNull(hostCertificates.revokedAt), gt(hostCertificates.expiresAt, now), gt(hostCertificates.serial, after)),
      )
      .orderBy(asc(hostCertificates.serial))
      .limit(PAGE);
    for (const row of page) entries.push({ serial: row.serial, revokedAt: row.revokedAt! });
    if (page.length < PAGE) return entries;
    after = page[page.length - 1]!.serial;
    await nextTurn();
  }
}

/**
 * The revocation lists of the trusted CAs (one, or two during a CA rotation),
 * signed once per change and served from memory.
 * `GET /v1/ca/crl` needs no credentials, so no request may build or sign
 * anything: the process that changes the revoked set builds the list after
 * its commit, keeps it in the KV store and announces it; every other process
 * takes that copy when the announcement arrives. A process with no list yet
 * (just started, or the store lost it) takes the stored one, or builds it once
 * when there is none. Valid as long as a host certificate, so an agent's
 * copy, renewed with every refresh, never goes stale while it runs; rebuilt
 * hourly at most, so expired entries leave it. A list made for another set
 * of CAs than this process trusts now (a CA rotation step) is never served:
 * an agent would refuse every certificate of a CA it has no list for.
 */
export class RevocationLists {
  private served: ServedList | null = null;
  private loading: Promise<ServedList> | null = null;
  private building: Promise<ServedList> | null = null;
  private queued: Promise<ServedList> | null = null;
  private subscription: Subscription | null = null;

  constructor(private readonly deps: Pick<ServiceDeps, "db" | "kv" | "clock" | "random" | "config" | "logger" | "ca">) {}

  async start(): Promise<void> {
    this.subscription = await this.deps.kv.subscribe(
      CRL_CHANGES_CHANNEL,
      (id) => void this.takeShared(id),
      // Announcements may have been lost while delivery was in doubt: look at the stored list once it is back.
      (reliable) => void (reliable && this.served && this.takeShared(null)),
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.close();
    this.subscription = null;
  }

  /** The list to serve. Only the first call of a process, or one finding its list due for renewal, reaches the stores. */
  async current(): Promise<ServedList> {
    const served = this.served;
    const now = this.deps.clock.now().getTime();
    if (served && this.isFresh(served)) return served;
    const next = this.load();
    if (!served || !this.coversTrusted(served) || now >= served.nextUpdate.getTime()) return next;
    // A list due for renewal is still valid: serve it while the next one is made.
    next.catch((error: unknown) => this.deps.logger.warn({ err: error }, "cannot renew the revocation list; serving the current one"));
    return served;
  }

  /** The list in memory when it needs no renewal; null otherwise (then `current()` says what to serve). */
  inMemory(): ServedList | null {
    return this.served && this.isFresh(this.served) ? this.served : null;
  }

  private isFresh(list: SharedList): boolean {
    return this.coversTrusted(list) && this.deps.clock.now().getTime() - list.thisUpdate.getTime() < this.refreshMs();
  }

  private coversTrusted(list: SharedList): boolean {
    return list.caIds === trustedIds(this.deps.ca.trusted);
  }

  /** The PEM as JSON string contents, when `pem` is the list served now (answers that embed it skip re-escaping 5 MB). */
  jsonOf(pem: string): string | null {
    return this.served && this.served.pem === pem ? this.served.pemJson : null;
  }

  /**
   * The revoked set changed and committed: build, share and announce the new
   * list. Failures are logged, not thrown: the change itself stands, and the
   * hourly renewal or the next change brings the list up to date.
   */
  async changed(): Promise<void> {
    try {
      await this.rebuild();
    } catch (error) {
      this.deps.logger.error({ err: error }, "cannot rebuild the revocation list after a revocation; retried at the next change or within the hour");
    }
  }

  private refreshMs(): number {
    return Math.min(REFRESH_MAX_MS, (this.deps.config.hostCertTtlS * 1000) / 4);
  }

  private load(): Promise<ServedList> {
    this.loading ??= this.storedOrBuilt().finally(() => (this.loading = null));
    return this.loading;
  }

  private async storedOrBuilt(): Promise<ServedList> {
    const stored = await this.stored();
    if (stored && this.isFresh(stored)) return this.adopt(stored);
    return this.rebuild();
  }

  /**
   * Another process announced a list (or delivery was restored): take the
   * stored copy when it is newer than ours and for the CAs we trust (one made
   * after a CA rotation step this process has not reloaded yet is taken by the
   * first `current()` after the reload).
   */
  private async takeShared(id: string | null): Promise<void> {
    if (id !== null && this.served?.id === id) return;
    try {
      const stored = await this.stored();
      if (stored && (id === null || stored.id === id) && this.coversTrusted(stored)) await this.adopt(stored);
    } catch (error) {
      this.deps.logger.warn({ err: error }, "cannot take the revocation list another control plane announced; serving ours");
    }
  }

  private async stored(): Promise<SharedList | null> {
    const raw = await this.deps.kv.get(CRL_KEY);
    return raw === null ? null : decodeShared(raw);
  }

  /** One build at a time; changes that arrive during a build share one more, started after it (it may predate them). */
  private rebuild(): Promise<ServedList> {
    if (!this.building) return this.startBuild();
    this.queued ??= this.building
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.startBuild();
      });
    return this.queued;
  }

  private startBuild(): Promise<ServedList> {
    const run = this.build().finally(() => {
      if (this.building === run) this.building = null;
    });
    this.building = run;
    return run;
  }

  private async build(): Promise<ServedList> {
    const { db, kv, clock, config, random } = this.deps;
    const authorities = this.deps.ca.trusted;
    // Taken before the read: a list is at least as new as every revocation committed before its thisUpdate.
    const thisUpdate = clock.now();
    const nextUpdate = new Date(thisUpdate.getTime() + config.hostCertTtlS * 1000);
    const pems: string[] = [];
    for (const ca of authorities) pems.push(await ca.revocationList(await revokedEntries(db, ca.id, thisUpdate), thisUpdate, nextUpdate));
    const list: SharedList = { id: random(12).toString("base64url"), caIds: trustedIds(authorities), thisUpdate, nextUpdate, pem: pems.join("") };
    // Another process may have stored a list read after ours: keep the newer one.
    const stored = await this.stored().catch(() => null);
    if (stored && stored.caIds === list.caIds && stored.thisUpdate > thisUpdate) return this.adopt(stored);
    try {
      await kv.set(CRL_KEY, encodeShared(list));
      await kv.publish(CRL_CHANGES_CHANNEL, list.id);
    } catch (error) {
      this.deps.logger.warn({ err: error }, "cannot share the revocation list through the KV store; serving it from this process");
    }
    return this.adopt(list);
  }

  private async adopt(list: SharedList): Promise<ServedList> {
    if (this.served && this.served.caIds === list.caIds && this.served.thisUpdate > list.thisUpdate) return this.served;
    const pemJson = await jsonStringContents(list.pem);
    const body = Buffer.from(
      `{"crl":"${pemJson}","this_update":"${list.thisUpdate.toISOString()}","next_update":"${list.nextUpdate.toISOString()}"}`,
    );
    const served: ServedList = { ...list, crls: splitCrls(list.pem), pemJson, body, etag: `"${list.id}"` };
    if (!this.served || this.served.caIds !== served.caIds || this.served.thisUpdate <= served.thisUpdate) this.served = served;
    return this.served;
  }
}
