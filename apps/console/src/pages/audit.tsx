import { AUDIT_ACTIONS } from "@muster/contract";
import type { AuditEntry } from "@muster/sdk/client";
import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import { ErrorPanel, Loading } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { Pager, useCursor } from "../components/pager.js";
import { shortDateTime } from "../format.js";
import { useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";

const PAGE_SIZE = 50;

/** A link to the console's page of an audit target, where it has one. */
function targetLink(entry: AuditEntry) {
  if (entry.target_type === "host" && entry.action !== "host.deleted") return <a href={`/console/hosts/${entry.target_id}`}>{entry.target_id}</a>;
  if (entry.target_type === "team") return <a href={`/console/teams/${entry.target_id}`}>{entry.target_id}</a>;
  return entry.target_id;
}

export function AuditTable({ entries }: { entries: AuditEntry[] }) {
  if (entries.length === 0) return <p class="empty">No entry.</p>;
  return (
    <div class="table-scroll">
      <table class="audit">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Actor</th>
            <th scope="col" class="wide">Details</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((entry) => (
            <tr key={entry.id}>
              <td class="nowrap" title={entry.created_at}>
                {shortDateTime(entry.created_at)}
              </td>
              <td>
                <code>{entry.action}</code>
              </td>
              <td class="mono small id">{targetLink(entry)}</td>
              <td class="mono small id">{entry.actor}</td>
              <td class="wide mono small">{Object.keys(entry.metadata).length > 0 ? JSON.stringify(entry.metadata) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Audit() {
  const { client, me } = useSession();
  const location = useLocation();
  const targetId = location.query.target_id ?? "";
  const action = location.query.action ?? "";
  const scope = `${targetId}|${action}`;
  const pager = useCursor(scope);
  const allowed = abilitiesOf(me).readAudit;
  const entries = useLoad(
    (signal) =>
      client.audit.listPage(
        { limit: PAGE_SIZE, ...(targetId ? { target_id: targetId } : {}), ...(action ? { action } : {}), ...(pager.cursor ? { cursor: pager.cursor } : {}) },
        { signal },
      ),
    [scope, pager.cursor],
    { refreshMs: 10_000 },
  );
  const [target, setTarget] = useState(targetId);
  const apply = (next: { target_id?: string; action?: string }) => {
    const query = new URLSearchParams(Object.entries({ target_id: targetId, action, ...next }).filter(([, v]) => v) as [string, string][]).toString();
    location.route(`/console/audit${query ? `?${query}` : ""}`);
  };

  return (
    <section>
      <PageTitle title="Audit log">Audit log</PageTitle>
      {allowed ? null : <p class="muted">The audit log is for admins and team owners; the API's answer to your key is below.</p>}
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          apply({ target_id: target.trim() });
        }}
      >
        <span class="field">
          <label for="audit-target">Target ID</label>
          <input id="audit-target" value={target} placeholder="host-…, usr-…, team-…" onInput={(e) => setTarget(e.currentTarget.value)} />
        </span>
        <span class="field">
          <label for="audit-action">Action</label>
          <select id="audit-action" value={action} onChange={(e) => apply({ action: e.currentTarget.value })}>
            <option value="">any</option>
            {AUDIT_ACTIONS.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </span>
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <ErrorPanel error={entries.error} />
      {entries.data ? (
        <>
          <AuditTable entries={entries.data.items} />
          <Pager pager={pager} nextCursor={entries.data.next_cursor} count={entries.data.items.length} />
        </>
      ) : entries.error ? null : (
        <Loading what="the audit log" />
      )}
    </section>
  );
}
