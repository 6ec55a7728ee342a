import { describe, expect, it } from "vitest";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import type { TObject, TSchema } from "@sinclair/typebox";
import { canonicalArch, CreateHostBody, CreateTeamBody, CreateUserBody, ERROR_CODES, ERROR_STATUS, IdSchema, routes, Tag, Timestamp, type RouteDef } from "../src/index.js";

const all = Object.values(routes) as RouteDef[];

describe("route table", () => {
  it("names every operation once and every method+path once", () => {
    expect(new Set(all.map((r) => r.operationId)).size).toBe(all.length);
    expect(new Set(all.map((r) => `${r.method} ${r.path}`)).size).toBe(all.length);
  });

  it("declares a schema for exactly the path parameters each path has", () => {
    for (const route of all) {
      const inPath = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      const declared = Object.keys(route.params?.properties ?? {}).sort();
      expect(declared, route.operationId).toEqual(inPath);
    }
  });

  it("rejects unknown fields in every request body and query", () => {
    const closed = (schema: TSchema | undefined) => schema === undefined || (schema as TObject).additionalProperties === false;
    for (const route of all) {
      expect(closed(route.body), `${route.operationId} body`).toBe(true);
      expect(closed(route.query), `${route.operationId} query`).toBe(true);
    }
  });

  it("gives every response status but 204 a body schema", () => {
    for (const route of all) expect(route.response === undefined, route.operationId).toBe(route.status === 204);
  });
});

describe("errors", () => {
  it("maps every code to the status SPEC §1 pins", () => {
    expect(ERROR_STATUS).toEqual({
      invalid_request: 400,
      unauthorized: 401,
      forbidden: 403,
      not_found: 404,
      method_not_allowed: 405,
      conflict: 409,
      // The event stream's: resuming from a position the log no longer holds.
      gone: 410,
      payload_too_large: 413,
      unsupported_media_type: 415,
      upgrade_required: 426,
      rate_limited: 429,
      internal: 500,
      unavailable: 503,
    });
    expect(ERROR_CODES).toHaveLength(13);
  });
});

describe("shapes", () => {
  it("accepts prefixed 128-bit IDs and nothing shorter", () => {
    const hostId = TypeCompiler.Compile(IdSchema("host"));
    expect(hostId.Check(`host-${"a".repeat(26)}`)).toBe(true);
    expect(hostId.Check("host-deadbeef")).toBe(false);
    expect(hostId.Check(`usr-${"a".repeat(26)}`)).toBe(false);
  });

  it("accepts tags of SPEC §5 only", () => {
    const tag = TypeCompiler.Compile(Tag);
    for (const good of ["gpu", "zone:eu-1", "a", "k=v", "x".repeat(63), "1st_pool.v2"]) expect(tag.Check(good), good).toBe(true);
    for (const bad of ["", "GPU", "-lead", ".lead", "x".repeat(64), "has space", "ünï"]) expect(tag.Check(bad), bad).toBe(false);
  });

  it("caps tags given at host creation at 64, without repeats", () => {
    const body = TypeCompiler.Compile(CreateHostBody);
    const tags = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
    expect(body.Check({ type: "regular", tags: tags(64) })).toBe(true);
    expect(body.Check({ type: "regular", tags: tags(65) })).toBe(false);
    expect(body.Check({ type: "regular", tags: ["a", "a"] })).toBe(false);
  });
});

describe("formats", () => {
  it("checks emails and timestamps rather than refusing the formats as unknown", () => {
    const body = TypeCompiler.Compile(CreateUserBody);
    expect(body.Check({ email: "ada@example.com" })).toBe(true);
    for (const bad of ["ada", "ada@", "@example.com", "a b@example.com", "ada@example"]) expect(body.Check({ email: bad }), bad).toBe(false);
    const timestamp = TypeCompiler.Compile(Timestamp);
    expect(timestamp.Check("2026-11-23T17:00:00.000Z")).toBe(true);
    expect(timestamp.Check("yesterday")).toBe(false);
  });
});

describe("labels", () => {
  it("refuse C0 and C1 control characters, which could drive an operator's terminal", () => {
    const team = TypeCompiler.Compile(CreateTeamBody);
    expect(team.Check({ name: "Research – Zürich 🚀" })).toBe(true);
    for (const bad of ["a\u0000", "a\u001b[2J", "a\u007f", "a\u009b31m"]) expect(team.Check({ name: bad }), JSON.stringify(bad)).toBe(false);
  });
});

describe("host architectures", () => {
  it("name every architecture as Go does, whatever name it comes in", () => {
    for (const [given, canonical] of [
      ["x86_64", "amd64"],
      ["X86_64", "amd64"],
      ["x64", "amd64"],
      [" amd64 ", "amd64"],
      ["aarch64", "arm64"],
      ["ARM64", "arm64"],
      ["i686", "386"],
      ["armv7l", "arm"],
      ["ppc64el", "ppc64le"],
      ["loongarch64", "loong64"],
    ]) {
      expect(canonicalArch(given!), given).toBe(canonical);
    }
  });

  it("keep a name they do not know as given", () => {
    expect(canonicalArch("sparc64")).toBe("sparc64");
    expect(canonicalArch(" e2k ")).toBe("e2k");
  });
});
