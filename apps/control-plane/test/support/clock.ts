import type { Clock } from "../../src/lib/clock.js";

/** A clock tests move by hand, so expiry and liveness need no sleeping. */
export class FakeClock implements Clock {
  private current: number;

  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.current = start;
  }

  now(): Date {
    return new Date(this.current);
  }

  advance(ms: number): void {
    this.current += ms;
  }
}
