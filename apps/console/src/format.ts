/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for null. */
export function timeAgo(at: string | null, now: number = Date.now()): string {
  if (at === null) return "never";
  const seconds = Math.round((now - Date.parse(at)) / 1000);
  if (seconds < 0) return "in the future";
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** An RFC 3339 time as the operator's local date and time. */
export function dateTime(at: string | null): string {
  return at === null ? "—" : new Date(at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** The same, short, for table cells. */
export function shortDateTime(at: string): string {
  return new Date(at).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function megabytes(mb: number | null | undefined): string {
  if (mb === null || mb === undefined) return "—";
  return mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)} GiB` : `${mb} MiB`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${m} min`;
}

/** Clock skew as the operator reads it: which way and by how much. */
export function skew(ms: number | null): string {
  if (ms === null) return "not measured";
  if (Math.abs(ms) < 1000) return `${ms} ms (in step)`;
  return `${(Math.abs(ms) / 1000).toFixed(1)} s ${ms > 0 ? "ahead" : "behind"}`;
}

/** Tags as typed: separated by spaces or commas, each once. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}
