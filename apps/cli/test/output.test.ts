import { describe, expect, it } from "vitest";
import { ago, clean, details, shellWord, table } from "../src/format.js";
import { startSpinner } from "../src/spinner.js";

function stream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (chunk: string) => chunks.push(chunk) };
}

describe("spinner", () => {
  it("animates in place on a terminal, hides the cursor, and restores it when stopped", async () => {
    const tty = stream(true);
    const spinner = startSpinner(tty, "waiting (pending)");
    await new Promise((resolve) => setTimeout(resolve, 250));
    spinner.update("waiting (offline)");
    await new Promise((resolve) => setTimeout(resolve, 100));
    spinner.stop("done");
    const output = tty.chunks.join("");
    expect(output.startsWith("\x1b[?25l")).toBe(true);
    // eslint-disable-next-line no-control-regex -- the escape sequences are what is under test
    const frames = new Set([...output.matchAll(/\r\x1b\[2K(\S) waiting/g)].map((m) => m[1]));
    expect(frames.size).toBeGreaterThanOrEqual(2);
    expect(output).toContain("waiting (offline)");
    expect(output.endsWith("\r\x1b[2K\x1b[?25hdone\n")).toBe(true);
    const settled = tty.chunks.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(tty.chunks.length).toBe(settled);
  });

  it("prints plain lines, once per change, anywhere else", () => {
    const pipe = stream(false);
    const spinner = startSpinner(pipe, "waiting (pending)");
    spinner.update("waiting (pending)");
    spinner.update("waiting (offline)");
    spinner.stop();
    expect(pipe.chunks).toEqual(["waiting (pending)\n", "waiting (offline)\n"]);
  });
});

describe("human output", () => {
  it("aligns columns under capitalised headers and shows missing values as -", () => {
    expect(table(["id", "name", "team"], [["host-1", "alpha", null], ["host-22", "b", "team-x"]])).toBe(
      ["ID        NAME    TEAM", "host-1    alpha   -", "host-22   b       team-x", ""].join("\n"),
    );
    expect(details([["ID", "host-1"], ["Last heartbeat", null]])).toBe("ID:              host-1\nLast heartbeat:  -\n");
  });

  it("never lets API values drive the terminal", () => {
    expect(clean("evil\x1b[2Jname\u009b31m")).toBe("evil?[2Jname?31m");
    // eslint-disable-next-line no-control-regex -- the control characters are what is under test
    expect(table(["name"], [["\x1b]0;pwned\x07"]])).not.toMatch(/[\x1b\x07]/);
  });

  it("quotes shell words only when they need it", () => {
    expect(shellWord("http://10.0.0.1:8080")).toBe("http://10.0.0.1:8080");
    expect(shellWord("https://cp.example.com/a?b=c&d")).toBe("'https://cp.example.com/a?b=c&d'");
    expect(shellWord("it's")).toBe(`'it'\\''s'`);
  });

  it("says how long ago a timestamp was", () => {
    const now = Date.parse("2026-01-02T00:00:00Z");
    expect(ago(null, now)).toBe("-");
    expect(ago("2026-01-01T23:59:48Z", now)).toBe("12s ago");
    expect(ago("2026-01-01T23:55:00Z", now)).toBe("5m ago");
    expect(ago("2026-01-01T21:00:00Z", now)).toBe("3h ago");
    expect(ago("2025-12-30T00:00:00Z", now)).toBe("3d ago");
  });
});
