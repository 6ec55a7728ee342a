import type { Hono } from "hono";
import type { AppEnv } from "./env.js";

interface KnownPath {
  pattern: RegExp;
  methods: Set<string>;
}

/** A Hono path (`/v1/hosts/:id`, `/console/*`) as a regular expression over request paths. */
function patternOf(path: string): RegExp {
  const source = path
    .split("/")
    .map((segment) => (segment === "*" ? ".*" : segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  // "/console/*" also answers "/console", as Hono routes it.
  return new RegExp(`^${source.replace(/\/\.\*$/, "(?:/.*)?")}$`);
}

/**
 * The methods the app answers on a path, read from its own routes (the
 * contract's and the system's), so that a wrong method on a known path gets
 * 405 with `Allow` rather than 404. Built on first use, after every route is mounted.
 */
export function allowedMethods(app: Hono<AppEnv>): (path: string) => string[] {
  let known: KnownPath[] | undefined;
  const build = (): KnownPath[] => {
    const byPath = new Map<string, Set<string>>();
    for (const route of app.routes) {
      if (route.method === "ALL") continue;
      const methods = byPath.get(route.path) ?? new Set<string>();
      methods.add(route.method);
      // Hono answers HEAD with the GET handler.
      if (route.method === "GET") methods.add("HEAD");
      byPath.set(route.path, methods);
    }
    return [...byPath].map(([path, methods]) => ({ pattern: patternOf(path), methods }));
  };
  return (path) => {
    known ??= build();
    const methods = new Set<string>();
    for (const entry of known) if (entry.pattern.test(path)) entry.methods.forEach((method) => methods.add(method));
    return [...methods].sort();
  };
}
