import { createCipheriv, createDecipheriv, createHash, hkdfSync } from "node:crypto";
import type { HostCredentials, RegisterHostBody } from "@muster/contract";
import type { ServiceDeps } from "./context.js";
import { registrationReplayKey } from "./kv-keys.js";

/** How long a registration's answer can be fetched again by the machine that asked, when the first answer was lost. */
export const REPLAY_WINDOW_MS = 5 * 60_000;
/** How long a registration in progress holds its token before a crashed process's claim counts as gone. */
const CLAIM_MS = 60_000;
/**
 * How long a request waits for an earlier one with the same token to finish
 * (real time: it waits on another request, not on the domain clock), and how
 * often it looks.
 */
const CLAIM_WAIT_MS = 5_000;
const CLAIM_POLL_MS = 25;
const HKDF_INFO = "muster registration replay v1";

export type ReplayRecord = { state: "claimed"; at: number } | { state: "issued"; at: number; credentials: HostCredentials };

/**
 * Which machine is asking. An agent's own machine ID (the SDK sends an
 * app-specific hash of /etc/machine-id) is the stable part when sent; without
 * one, the specs it reports stand in. The CSR counts whole: only a
 * registration that proves possession of a key is replayed (the answer
 * carries a certificate for that key, useless to anyone else), and only to
 * the very same CSR, which someone who merely saw the host's specs cannot
 * produce.
 */
export function machineFingerprint(body: RegisterHostBody, csr: string): string {
  const machine =
    body.machine_id !== undefined
      ? { machine_id: body.machine_id }
      : {
          hostname: body.hostname ?? null,
          arch: body.arch,
          cpu_cores: body.cpu_cores,
          memory_mb: body.memory_mb,
          disk_gb: body.disk_gb,
          address: body.address,
        };
  return createHash("sha256").update(JSON.stringify({ ...machine, csr: csr.replace(/\s+/g, "") })).digest("hex");
}

/**
 * A registration's answer, kept for a retry after a lost response. The KV
 * store holds it sealed (AES-256-GCM) under a key derived (HKDF) from the
 * registration token itself, which only the registering agent knows, and
 * bound to the machine's fingerprint as associated data: the store never
 * holds a usable secret, and another machine with the same token cannot open
 * it. The same record first marks the token claimed, so that a retry from the
 * same machine waits for the request it repeats instead of racing it. The
 * claim decides nothing else: the token's database row picks the one winner.
 */
export class RegistrationReplay {
  private readonly kvKey: string;
  private readonly key: Buffer;
  /** Whether this request holds the claim (and so may release it). */
  private held = false;

  constructor(
    private readonly deps: Pick<ServiceDeps, "kv" | "clock" | "random" | "logger">,
    token: string,
    tokenHash: string,
    private readonly fingerprint: string,
  ) {
    this.kvKey = registrationReplayKey(tokenHash);
    this.key = Buffer.from(hkdfSync("sha256", token, Buffer.alloc(0), HKDF_INFO, 32));
  }

  /**
   * Marks the token claimed by this request, when no one else has, and answers
   * null: the request goes on to the token. A request of this same machine
   * that went first answers it instead: its credentials, or, while it is in
   * progress, a wait (bounded) for them, so a retry that overtook its own lost
   * attempt gets that attempt's answer, and a repeat of a refused token gets
   * the same refusal. Another machine's record, or one too old to answer,
   * holds nobody up: the token's row decides (a claim left by a crashed
   * process must not lock out the machine the token is meant for).
   */
  async claim(): Promise<ReplayRecord | null> {
    const until = performance.now() + CLAIM_WAIT_MS;
    for (;;) {
      const record: ReplayRecord = { state: "claimed", at: this.now() };
      if (await this.deps.kv.set(this.kvKey, this.seal(record), { ttlMs: CLAIM_MS, onlyIfAbsent: true })) {
        this.held = true;
        return null;
      }
      const earlier = await this.earlier();
      if (earlier === "unusable") return null;
      if (earlier !== null && (earlier.state === "issued" || performance.now() >= until)) return earlier;
      // Released meanwhile (the earlier request failed): claim again at once; still in progress: look again shortly.
      if (earlier !== null) await new Promise((resolve) => setTimeout(resolve, CLAIM_POLL_MS));
    }
  }

  /** This machine's earlier record; "unusable" when the record is another machine's or too old; null when there is none. */
  private async earlier(): Promise<ReplayRecord | "unusable" | null> {
    const sealed = await this.deps.kv.get(this.kvKey);
    if (sealed === null) return null;
    const record = this.open(sealed);
    if (record === null) return "unusable";
    const age = this.now() - record.at;
    return age <= (record.state === "claimed" ? CLAIM_MS : REPLAY_WINDOW_MS) ? record : "unusable";
  }

  /**
   * Keeps the answer for the replay window, less the revocation list (which
   * can be megabytes; a retry gets the current one). A store failure costs only
   * the replay, never the answer.
   */
  async remember(credentials: HostCredentials): Promise<void> {
    const { crl: _list, ...kept } = credentials;
    const record: ReplayRecord = { state: "issued", at: this.now(), credentials: kept };
    await this.deps.kv.set(this.kvKey, this.seal(record), { ttlMs: REPLAY_WINDOW_MS }).catch((error: unknown) => {
      this.deps.logger.warn({ err: error, host_id: credentials.host.id }, "cannot keep the registration's answer for a retry");
    });
  }

  /** Drops this request's claim, if it holds one (the registration failed), so a retry is judged afresh. */
  async release(): Promise<void> {
    if (this.held) await this.deps.kv.del([this.kvKey]).catch(() => {});
  }

  private now(): number {
    return this.deps.clock.now().getTime();
  }

  private seal(record: ReplayRecord): string {
    const iv = this.deps.random(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv).setAAD(Buffer.from(this.fingerprint));
    const data = Buffer.concat([cipher.update(JSON.stringify(record), "utf8"), cipher.final()]);
    return [iv, data, cipher.getAuthTag()].map((part) => part.toString("base64url")).join(".");
  }

  /** Null when the record was sealed for another machine (or is not a record at all). */
  private open(sealed: string): ReplayRecord | null {
    const [iv, data, tag] = sealed.split(".").map((part) => Buffer.from(part, "base64url"));
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, iv!).setAAD(Buffer.from(this.fingerprint));
      decipher.setAuthTag(tag!);
      return JSON.parse(Buffer.concat([decipher.update(data!), decipher.final()]).toString("utf8")) as ReplayRecord;
    } catch {
      return null;
    }
  }
}
