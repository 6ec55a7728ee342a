import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Config } from "../config.js";
import type { Db, Tx } from "../db/client.js";
import { certificateAuthority, type CertificateAuthorityRow } from "../db/schema/index.js";
import type { RandomBytes } from "../lib/clock.js";
import { sealedContext, SecretKeyError, type Sealer } from "../secrets/sealer.js";
import { CertificateAuthority, generateCertificateAuthority } from "./ca.js";

/** The first CA's ID (and a CA given as files): certificates recorded before CA rotation existed name it. */
export const FIRST_CA_ID = "ca";

interface Authorities {
  active: CertificateAuthority;
  previous: CertificateAuthority | null;
}

/**
 * The control plane's CAs as this process has them loaded: the `active` one
 * signs; during a rotation the `previous` one is still trusted (and still
 * issues the client certificate for probing hosts that have not picked up the
 * new one yet). Kept in the database, sealed, so every process shares them;
 * each step of a rotation is announced and every process reloads. A CA given
 * as files is the only one and never rotates here.
 */
export class CaKeyring {
  private constructor(
    private readonly db: Db,
    private readonly sealer: Sealer,
    readonly source: "database" | "files",
    private current: Authorities,
  ) {}

  static async load(db: Db, sealer: Sealer, config: Pick<Config, "caCertFile" | "caKeyFile">): Promise<CaKeyring> {
    if (config.caCertFile && config.caKeyFile) {
      const key = createPrivateKey(readFileSync(config.caKeyFile, "utf8"));
      const active = await CertificateAuthority.fromKey(FIRST_CA_ID, null, readFileSync(config.caCertFile, "utf8"), key, config.caCertFile);
      return new CaKeyring(db, sealer, "files", { active, previous: null });
    }
    return new CaKeyring(db, sealer, "database", await loadFromDatabase(db, sealer, []));
  }

  async reload(): Promise<void> {
    if (this.source === "database") this.current = await loadFromDatabase(this.db, this.sealer, this.trusted);
  }

  get active(): CertificateAuthority {
    return this.current.active;
  }

  get previous(): CertificateAuthority | null {
    return this.current.previous;
  }

  /** Every CA to trust, the one that signs first. */
  get trusted(): CertificateAuthority[] {
    return this.current.previous ? [this.current.active, this.current.previous] : [this.current.active];
  }

  /** The trusted CAs' certificates as one PEM bundle, in `trusted` order. */
  get bundlePem(): string {
    return this.trusted.map((ca) => ca.certificatePem.trimEnd() + "\n").join("");
  }

  find(id: string): CertificateAuthority | undefined {
    return this.trusted.find((ca) => ca.id === id);
  }
}

/** The CAs as the database has them now; one already `loaded` is kept as it is rather than unsealed again (reloads run every minute). */
async function loadFromDatabase(db: Db, sealer: Sealer, loaded: readonly CertificateAuthority[]): Promise<Authorities> {
  const rows = await db.select().from(certificateAuthority);
  const active = rows.find((row) => row.state === "active");
  if (!active) throw new Error("no active CA in the database (the start-up creates one)");
  const previous = rows.find((row) => row.state === "previous");
  const openOrKeep = (row: CertificateAuthorityRow) => loaded.find((ca) => ca.id === row.id) ?? open(row, sealer);
  return { active: await openOrKeep(active), previous: previous ? await openOrKeep(previous) : null };
}

async function open(row: CertificateAuthorityRow, sealer: Sealer): Promise<CertificateAuthority> {
  if (row.sealedPrivateKey === null || row.kekId === null) {
    throw new SecretKeyError(`the CA ${row.id} is not sealed; a start of this build seals it (restart one control plane)`);
  }
  const der = sealer.open({ kekId: row.kekId, sealed: row.sealedPrivateKey }, sealedContext.certificateAuthority(row.id));
  const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  return CertificateAuthority.fromKey(row.id, row.createdAt, row.certificate, key, `the database (CA ${row.id})`);
}

/** A new CA, its key sealed, as a row of `state`. */
export async function newCaRow(sealer: Sealer, random: RandomBytes, id: string, state: "active" | "previous", now: Date) {
  const generated = await generateCertificateAuthority(id === FIRST_CA_ID ? "Muster host CA" : `Muster host CA ${id}`, now, random);
  const { kekId, sealed } = sealer.seal(generated.privateKeyDer, sealedContext.certificateAuthority(id));
  return { id, certificate: generated.certificate, sealedPrivateKey: sealed, kekId, state, createdAt: now };
}

/** Makes the first CA of an empty database (start-up, one process at a time); nothing when the CA is given as files. */
export async function ensureCertificateAuthority(
  db: Db | Tx,
  sealer: Sealer,
  random: RandomBytes,
  now: Date,
  config: Pick<Config, "caCertFile" | "caKeyFile">,
): Promise<void> {
  if (config.caCertFile && config.caKeyFile) return;
  const [any] = await db.select({ id: certificateAuthority.id }).from(certificateAuthority).limit(1);
  if (!any) await db.insert(certificateAuthority).values(await newCaRow(sealer, random, FIRST_CA_ID, "active", now)).onConflictDoNothing();
}
