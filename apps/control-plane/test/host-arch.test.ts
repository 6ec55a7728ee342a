import { eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hosts } from "../src/db/schema/index.js";
import { canonicalizeHostArch } from "../src/services/host-arch.js";
import { startTestApp, type TestApp } from "./support/app.js";
import { Factories } from "./support/factories.js";

/**
 * Host architectures in one vocabulary (SPEC §8): whatever name an agent
 * sends, the host is stored with Go's, and a list filtered by any name of an
 * architecture finds the hosts of every agent.
 */
let t: TestApp;
let f: Factories;

beforeAll(async () => {
  t = await startTestApp();
  f = new Factories(t);
});
afterAll(() => t.close());

async function registeredAs(arch: string) {
  const { registration_token } = await f.regularHost({ tags: [tag] });
  return (await f.register(registration_token, { arch })).host;
}

const tag = `arch-${Date.now().toString(36)}`;

async function listed(arch: string): Promise<string[]> {
  const res = await t.http.get(`/v1/hosts?tag=${tag}&arch=${encodeURIComponent(arch)}`, { key: t.adminKey });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body.items as { id: string }[]).map((host) => host.id).sort();
}

describe("host architectures", () => {
  it("are stored under Go's name, whatever name the agent sent", async () => {
    expect((await registeredAs("x86_64")).arch).toBe("amd64");
    expect((await registeredAs("AArch64")).arch).toBe("arm64");
    expect((await registeredAs("arm64")).arch).toBe("arm64");
    expect((await registeredAs("sparc64")).arch).toBe("sparc64");
  });

  it("filter a mixed fleet the same way under any of their names", async () => {
    const amd = [await registeredAs("amd64"), await registeredAs("x86_64"), await registeredAs("x64")].map((host) => host.id).sort();
    const arm = [await registeredAs("aarch64"), await registeredAs("arm64")].map((host) => host.id).sort();
    for (const name of ["amd64", "x86_64", "X64"]) expect(await listed(name), name).toEqual(expect.arrayContaining(amd));
    for (const name of ["arm64", "aarch64"]) expect(await listed(name), name).toEqual(expect.arrayContaining(arm));
    expect(await listed("amd64")).not.toEqual(expect.arrayContaining([arm[0]]));
    expect(await listed("riscv64")).toEqual([]);
  });

  it("are renamed at start for hosts registered before, once", async () => {
    const old = [await registeredAs("amd64"), await registeredAs("arm64"), await registeredAs("sparc64")];
    const db = t.stores.database.db;
    const as = (host: { id: string }, arch: string) => db.update(hosts).set({ arch }).where(eq(hosts.id, host.id));
    await as(old[0]!, "x86_64");
    await as(old[1]!, "aarch64");

    expect(await canonicalizeHostArch(db)).toBe(2);
    const rows = await db.select({ id: hosts.id, arch: hosts.arch }).from(hosts).where(inArray(hosts.id, old.map((host) => host.id)));
    expect(Object.fromEntries(rows.map((row) => [row.id, row.arch]))).toEqual({ [old[0]!.id]: "amd64", [old[1]!.id]: "arm64", [old[2]!.id]: "sparc64" });
    expect(await canonicalizeHostArch(db)).toBe(0);
  });
});
