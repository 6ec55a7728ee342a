import { useState } from "preact/hooks";
import { FleetChart } from "../components/chart.js";
import { ErrorPanel, Loading } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { emptySummary, STATUSES, summarize, TYPES, type FleetSummary } from "../fleet.js";
import { useLoad } from "../live.js";
import { useSession } from "../session.js";

/** The events that change a count: a host appears, leaves, or changes status. */
const COUNTED = new Set<string>(["host.created", "host.registered", "host.online", "host.offline", "host.deleted"]);
/** The whole fleet is walked (500 hosts a request) for exact counts; so a busy fleet's events reload it at most this often. */
const OVERVIEW_MIN_INTERVAL_MS = 5_000;

export function Overview() {
  const { client, me } = useSession();
  const [counted, setCounted] = useState(0);
  const fleet = useLoad(
    async (signal) => {
      const summary = emptySummary();
      for await (const page of client.hosts.list({ limit: 500 }, { signal }).pages()) {
        summarize(summary, page.items);
        setCounted(summary.total);
      }
      return { summary, at: new Date() };
    },
    [],
    { live: (event) => COUNTED.has(event.type), minIntervalMs: OVERVIEW_MIN_INTERVAL_MS },
  );
  const scope = me.role === "admin" ? "every team's and the platform's hosts" : `the hosts of ${me.team?.name ?? "your team"}`;

  return (
    <section>
      <PageTitle title="Overview">Fleet overview</PageTitle>
      <p class="muted">
        Counts of {scope}
        {fleet.data ? `, as of ${fleet.data.at.toLocaleTimeString()}` : ""}.
      </p>
      <ErrorPanel error={fleet.error} />
      {fleet.data ? <Summary summary={fleet.data.summary} /> : fleet.error ? null : <Loading what={`the fleet (${counted} hosts counted)`} />}
    </section>
  );
}

function Summary({ summary }: { summary: FleetSummary }) {
  return (
    <>
      <div class="cards">
        <a class="card" href="/console/hosts">
          <span class="figure" data-testid="total">{summary.total}</span> hosts
        </a>
        {STATUSES.map((status) => (
          <a key={status} class={`card card-${status}`} href={`/console/hosts?status=${status}`}>
            <span class="figure" data-testid={status}>
              {summary.byStatus[status]}
            </span>{" "}
            {status}
          </a>
        ))}
        <a class="card card-offline" href="/console/hosts?status=offline">
          <span class="figure" data-testid="offline-last-hour">
            {summary.offlineInLastHour}
          </span>{" "}
          went offline in the last hour
        </a>
      </div>
      <div class="split">
        <FleetChart summary={summary} />
        <table>
          <caption>By type</caption>
          <thead>
            <tr>
              <th scope="col">type</th>
              {STATUSES.map((status) => (
                <th key={status} scope="col">
                  {status}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {TYPES.map((type) => (
              <tr key={type}>
                <th scope="row">{type}</th>
                {STATUSES.map((status) => (
                  <td key={status}>{summary.byType[type][status]}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
