/**
 * How far this host's clock is from the control plane's, read from the `Date`
 * header of its answers. The header has one-second resolution, so the control
 * plane's time lies in [date, date + 1 s): the estimate takes the middle, and
 * is good to about half a second plus the request's trip, plenty for a bound
 * counted in seconds.
 */
export function clockSkewMs(dateHeader: string | null, localMs: number): number | undefined {
  if (dateHeader === null) return undefined;
  const serverMs = Date.parse(dateHeader);
  return Number.isNaN(serverMs) ? undefined : localMs - (serverMs + 500);
}

/** Says when the skew crosses the bound, each way, rather than at every answer. */
export class ClockSkewWatch {
  private over = false;

  constructor(
    private readonly boundMs: number,
    private readonly onCross: (skewMs: number, over: boolean) => void,
  ) {}

  observe(skewMs: number | undefined): void {
    if (skewMs === undefined) return;
    const over = Math.abs(skewMs) > this.boundMs;
    if (over === this.over) return;
    this.over = over;
    this.onCross(skewMs, over);
  }
}
