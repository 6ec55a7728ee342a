// In unicode mode only an unpaired surrogate is a "surrogate" code point; PostgreSQL cannot store one.
const LONE_SURROGATE = /\p{Cs}/u;
// PostgreSQL's text and jsonb cannot hold NUL at all (jsonb refuses \u0000 even escaped).
const NUL = "\u0000";

const MAX_DEPTH = 32;

function badText(text: string): string | null {
  if (text.includes(NUL)) return "contains a NUL character (\\u0000), which cannot be stored";
  if (LONE_SURROGATE.test(text)) return "is not well-formed unicode (unpaired surrogate)";
  return null;
}

/**
 * What is wrong with a parsed JSON value that a store cannot keep, or null:
 * nesting past MAX_DEPTH, and strings or keys with NUL or unpaired
 * surrogates. Walks without recursion (hostile values nest thousands deep).
 * `root` names the value in the message ("body", "message").
 */
export function unstorableJson(value: unknown, root: string): string | null {
  const pending: { value: unknown; path: string; depth: number }[] = [{ value, path: "", depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const where = next.path ? `${root} field '${next.path}'` : root;
    if (typeof next.value === "string") {
      const problem = badText(next.value);
      if (problem) return `${where} ${problem}`;
    }
    if (next.value === null || typeof next.value !== "object") continue;
    if (next.depth >= MAX_DEPTH) return `${where}: nested deeper than ${MAX_DEPTH} levels`;
    for (const [key, item] of Object.entries(next.value)) {
      const problem = badText(key);
      if (problem) return `${where}: a key ${problem}`;
      pending.push({ value: item, path: next.path ? `${next.path}.${key}` : key, depth: next.depth + 1 });
    }
  }
  return null;
}
