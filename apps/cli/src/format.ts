/*
 * Human output: aligned tables and key/value blocks. Values come from the API
 * and so, ultimately, from other people (host names, team names): control
 * characters are replaced so nothing printed can drive the terminal.
 */

// C0 and C1 controls: ESC and CSI (\u009b) start terminal escape sequences.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

export function clean(value: unknown): string {
  if (value === null || value === undefined || value === "") return "-";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.replace(CONTROL, "?");
}

/** Columns separated by three spaces, headers in capitals (as kubectl prints them). */
export function table(headers: string[], rows: unknown[][]): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((row) => row.map(clean))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => [...(row[i] ?? "")].length)));
  return cells
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + " ".repeat(widths[i]! - [...cell].length))).join("   "))
    .join("\n") + "\n";
}

/** `Label:  value` lines, labels aligned. */
export function details(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 1;
  return pairs.map(([label, value]) => `${`${label}:`.padEnd(width)}  ${clean(value)}`).join("\n") + "\n";
}

/** "12s ago", "5m ago", "3d ago": how long since an RFC 3339 timestamp. */
export function ago(timestamp: string | null, now = Date.now()): string {
  if (!timestamp) return "-";
  const seconds = Math.max(0, Math.round((now - Date.parse(timestamp)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** Audit metadata as `key=value` pairs. */
export function pairs(record: Record<string, unknown>): string {
  return Object.entries(record)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
}

/** Quotes a word for a POSIX shell only when it needs it, so printed commands can be pasted as they are. */
export function shellWord(word: string): string {
  return /^[\w./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
