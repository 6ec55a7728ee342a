import type { Host } from "@muster/sdk/client";
import { useLocation } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { ErrorPanel, Loading, StatusBadge } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { Pager, useCursor } from "../components/pager.js";
import { STATUSES, TYPES } from "../fleet.js";
import { timeAgo } from "../format.js";
import { useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";

const PAGE_SIZE = 50;
const HOST_ID = /^host-[a-z2-7]{26}$/;
const FILTERS = ["status", "type", "tag", "team_id", "hostname"] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

/** The filters live in the address, so a filtered list can be bookmarked and shared (they name nothing secret). */
function filtersOf(query: Record<string, string>): Filters {
  return Object.fromEntries(FILTERS.filter((name) => query[name]).map((name) => [name, query[name]]));
}

export function Hosts() {
  const { client, me } = useSession();
  const can = abilitiesOf(me);
  const location = useLocation();
  const filters = filtersOf(location.query);
  const key = JSON.stringify(filters);
  const pager = useCursor(key);

  const hosts = useLoad(
    (signal) => client.hosts.listPage({ ...(filters as object), limit: PAGE_SIZE, ...(pager.cursor ? { cursor: pager.cursor } : {}) }, { signal }),
    [key, pager.cursor],
    // Any host event may change who is on this page (created, deleted, tags) or how a row reads.
    { live: (event) => event.type.startsWith("host.") },
  );
  const teams = useLoad((signal) => (can.seesAllTeams ? client.teams.list({ limit: 500 }, { signal }).toArray({ max: 500 }) : Promise.resolve([])), []);

  const apply = (next: Filters) => {
    const query = new URLSearchParams(Object.entries(next).filter(([, value]) => value) as [string, string][]).toString();
    location.route(`/console/hosts${query ? `?${query}` : ""}`);
  };

  return (
    <section>
      <PageTitle title="Hosts">Hosts</PageTitle>
      {location.query.deleted ? (
        <p class="notice" role="status">
          Host {location.query.deleted} was deleted; its credentials no longer work.
        </p>
      ) : null}
      <div class="toolbar">
        <SearchBox initial={filters.hostname ?? ""} onSearch={(text) => (HOST_ID.test(text) ? location.route(`/console/hosts/${text}`) : apply({ ...filters, hostname: text }))} />
        {can.createHosts ? (
          <a class="button primary" href="/console/hosts/new">
            Add host
          </a>
        ) : null}
      </div>
      <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <Select label="Status" value={filters.status} options={STATUSES} onChange={(status) => apply({ ...filters, status })} />
        <Select label="Type" value={filters.type} options={can.seesAllTeams ? TYPES : ["byoc"]} onChange={(type) => apply({ ...filters, type })} />
        {can.seesAllTeams ? (
          <Select
            label="Team"
            value={filters.team_id}
            options={(teams.data ?? []).map((team) => team.id)}
            labels={Object.fromEntries((teams.data ?? []).map((team) => [team.id, team.name]))}
            onChange={(team_id) => apply({ ...filters, team_id })}
          />
        ) : null}
        <TagFilter value={filters.tag ?? ""} onChange={(tag) => apply({ ...filters, tag })} />
        {Object.keys(filters).length > 0 ? (
          <button type="button" class="secondary" onClick={() => apply({})}>
            Clear filters
          </button>
        ) : null}
      </form>
      <ErrorPanel error={hosts.error} />
      {hosts.data ? (
        <>
          <HostTable hosts={hosts.data.items} showTeam={can.seesAllTeams} teamNames={Object.fromEntries((teams.data ?? []).map((t) => [t.id, t.name]))} />
          <Pager pager={pager} nextCursor={hosts.data.next_cursor} count={hosts.data.items.length} />
        </>
      ) : hosts.error ? null : (
        <Loading what="hosts" />
      )}
    </section>
  );
}

function SearchBox({ initial, onSearch }: { initial: string; onSearch(text: string): void }) {
  const [text, setText] = useState(initial);
  return (
    <form
      role="search"
      class="search"
      onSubmit={(e) => {
        e.preventDefault();
        onSearch(text.trim());
      }}
    >
      <label for="host-search">Search by host ID or hostname</label>
      <input id="host-search" type="search" value={text} placeholder="host-… or the start of a hostname" onInput={(e) => setText(e.currentTarget.value)} />
      <button type="submit" class="secondary">
        Search
      </button>
    </form>
  );
}

function TagFilter({ value, onChange }: { value: string; onChange(tag: string): void }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  return (
    <span class="field">
      <label for="filter-tag">Tag</label>
      <input
        id="filter-tag"
        value={text}
        placeholder="e.g. gpu"
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => e.key === "Enter" && onChange(text.trim())}
        onBlur={() => text.trim() !== value && onChange(text.trim())}
      />
    </span>
  );
}

function Select(props: { label: string; value: string | undefined; options: readonly string[]; labels?: Record<string, string>; onChange(value: string): void }) {
  const id = `filter-${props.label.toLowerCase()}`;
  return (
    <span class="field">
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value ?? ""} onChange={(e) => props.onChange(e.currentTarget.value)}>
        <option value="">any</option>
        {props.options.map((option) => (
          <option key={option} value={option}>
            {props.labels?.[option] ?? option}
          </option>
        ))}
      </select>
    </span>
  );
}

export function HostTable({ hosts, showTeam, teamNames = {} }: { hosts: Host[]; showTeam: boolean; teamNames?: Record<string, string> }) {
  if (hosts.length === 0) return <p class="empty">No host matches.</p>;
  return (
    <div class="table-scroll">
      <table class="hosts">
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">Status</th>
            <th scope="col" class="wide">Type</th>
            {showTeam ? <th scope="col" class="wide">Team</th> : null}
            <th scope="col" class="wide">Tags</th>
            <th scope="col">Last heartbeat</th>
            <th scope="col" class="wide">Specs</th>
          </tr>
        </thead>
        <tbody>
          {hosts.map((host) => (
            <tr key={host.id} data-host={host.id}>
              <td class="id">
                <a href={`/console/hosts/${host.id}`}>{host.hostname ?? host.id}</a>
                {host.hostname ? <div class="muted mono small">{host.id}</div> : null}
              </td>
              <td>
                <StatusBadge status={host.status} />
              </td>
              <td class="wide">{host.type}</td>
              {showTeam ? <td class="wide">{host.team_id ? (teamNames[host.team_id] ?? host.team_id) : "—"}</td> : null}
              <td class="wide">
                {host.tags.map((tag) => (
                  <span key={tag} class="tag">
                    {tag}
                  </span>
                ))}
              </td>
              <td title={host.last_heartbeat_at ?? undefined}>{timeAgo(host.last_heartbeat_at)}</td>
              <td class="wide">{host.cpu_cores ? `${host.arch ?? ""} · ${host.cpu_cores} CPU · ${Math.round((host.memory_mb ?? 0) / 1024)} GiB` : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
