import type { FleetSummary } from "../fleet.js";
import { STATUSES, TYPES } from "../fleet.js";

const WIDTH = 320;
const BAR = 22;
const GAP = 14;
const LABEL = 70;

/**
 * Hosts of each type as one bar split by status: drawn in SVG by hand (no
 * chart library in the bundle), with the same figures in a table for screen readers.
 */
export function FleetChart({ summary }: { summary: FleetSummary }) {
  const largest = Math.max(1, ...TYPES.map((type) => STATUSES.reduce((sum, status) => sum + summary.byType[type][status], 0)));
  const scale = (WIDTH - LABEL - 40) / largest;
  const height = TYPES.length * (BAR + GAP);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} width="100%" height={height} role="img" aria-labelledby="fleet-chart-caption">
        {TYPES.map((type, row) => {
          let x = LABEL;
          const y = row * (BAR + GAP);
          const total = STATUSES.reduce((sum, status) => sum + summary.byType[type][status], 0);
          return (
            <g key={type}>
              <text x={0} y={y + BAR * 0.7} class="chart-label">
                {type}
              </text>
              {STATUSES.map((status) => {
                const width = summary.byType[type][status] * scale;
                const bar = <rect key={status} x={x} y={y} width={width} height={BAR} class={`fill-${status}`} />;
                x += width;
                return bar;
              })}
              <text x={x + 6} y={y + BAR * 0.7} class="chart-label">
                {total}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption id="fleet-chart-caption">
        Hosts by type and status:{" "}
        {STATUSES.map((status) => (
          <span key={status} class="legend">
            <span class={`swatch fill-${status}`} aria-hidden="true" /> {status}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
