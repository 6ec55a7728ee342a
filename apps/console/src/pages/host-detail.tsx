import type { Host, MusterClient } from "@muster/sdk/client";
import { useLocation, useRoute } from "preact-iso";
import { useState } from "preact/hooks";
import { ConfirmButton } from "../components/confirm.js";
import { ErrorPanel, Loading, StatusBadge } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { dateTime, duration, megabytes, skew, timeAgo } from "../format.js";
import { useAction, useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";
import { AuditTable } from "./audit.js";
import { Enrollment } from "./add-host.js";

/** Heartbeats' figures (metrics, last heartbeat, skew) are not events (the hot path writes none), so the page reads them again this often. */
const HEARTBEAT_FIGURES_MS = 15_000;

export function HostDetail() {
  const { params } = useRoute();
  const id = params.id!;
  const { client, me } = useSession();
  const host = useLoad((signal) => client.hosts.get(id, { signal }), [id], {
    live: (event) => event.host_id === id && event.type.startsWith("host."),
    refreshMs: HEARTBEAT_FIGURES_MS,
  });

  if (!host.data) {
    return (
      <section>
        <PageTitle title="Host">{id}</PageTitle>
        {host.error ? <ErrorPanel error={host.error} what="Host" /> : <Loading what="the host" />}
        <p>
          <a href="/console/hosts">← All hosts</a>
        </p>
      </section>
    );
  }
  const manage = abilitiesOf(me).manageHost(host.data);
  return (
    <section>
      <PageTitle title={host.data.hostname ?? id}>
        {host.data.hostname ?? id} <StatusBadge status={host.data.status} />
      </PageTitle>
      {host.data.hostname ? <p class="muted mono">{id}</p> : null}
      {/* An error while the host is on screen (a reload failed): said, with the last known state kept below. */}
      <ErrorPanel error={host.error} what="Host" />
      <div class="grid">
        <Specs host={host.data} />
        <Live host={host.data} />
        <Certificate host={host.data} client={client} manage={manage} />
        <Tags host={host.data} client={client} manage={manage} onChange={host.refresh} />
        <Commands host={host.data} client={client} manage={manage} />
        {manage ? <Danger host={host.data} client={client} /> : null}
      </div>
      {abilitiesOf(me).readAudit ? <HostAudit id={id} client={client} /> : null}
    </section>
  );
}

function Facts({ rows }: { rows: [string, preact.ComponentChildren][] }) {
  return (
    <dl class="facts">
      {rows.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value ?? "—"}</dd>
        </div>
      ))}
    </dl>
  );
}

function Specs({ host }: { host: Host }) {
  return (
    <article class="panel">
      <h2>Machine</h2>
      <Facts
        rows={[
          ["Type", host.type],
          ["Team", host.team_id ?? "— (platform host)"],
          ["Address", host.address],
          ["Architecture", host.arch],
          ["CPU cores", host.cpu_cores],
          ["Memory", megabytes(host.memory_mb)],
          ["Disk", host.disk_gb === null ? null : `${host.disk_gb} GB`],
          ["OS", host.os],
          ["Agent", host.agent_version],
          ["Provider / zone", [host.provider, host.availability_zone].filter(Boolean).join(" / ") || null],
          ["Registered", dateTime(host.registered_at)],
          ["Created", `${dateTime(host.created_at)} by ${host.created_by}`],
        ]}
      />
    </article>
  );
}

function Live({ host }: { host: Host }) {
  const metrics = host.metrics;
  return (
    <article class="panel">
      <h2>Live</h2>
      <Facts
        rows={[
          ["Status", <StatusBadge key="s" status={host.status} />],
          ["Last heartbeat", <span title={host.last_heartbeat_at ?? undefined}>{timeAgo(host.last_heartbeat_at)}</span>],
          ["Clock skew", skew(host.clock_skew_ms)],
          ["CPU", metrics?.cpu_percent === undefined ? null : `${metrics.cpu_percent.toFixed(1)} %`],
          ["Memory used", metrics?.memory_used_mb === undefined ? null : `${megabytes(metrics.memory_used_mb)} of ${megabytes(host.memory_mb)}`],
          ["Disk used", metrics?.disk_used_gb === undefined ? null : `${metrics.disk_used_gb} of ${host.disk_gb ?? "?"} GB`],
          ["Load (1 min)", metrics?.load_1m?.toFixed(2)],
          ["Uptime", metrics?.uptime_s === undefined ? null : duration(metrics.uptime_s)],
        ]}
      />
    </article>
  );
}

function Certificate({ host, client, manage }: { host: Host; client: MusterClient; manage: boolean }) {
  const probe = useAction(() => client.hosts.probe(host.id));
  const result = probe.result;
  return (
    <article class="panel">
      <h2>Certificate and mTLS</h2>
      <Facts
        rows={[
          ["Fingerprint (SHA-256)", host.cert_fingerprint ? <code class="wrap">{host.cert_fingerprint}</code> : null],
          ["Expires", host.cert_fingerprint ? `${dateTime(host.cert_expires_at)}` : null],
          ["mTLS endpoint", host.mtls_enabled ? "answered the last probe" : "not confirmed"],
        ]}
      />
      {manage ? (
        <button type="button" class="secondary" disabled={probe.pending} onClick={() => probe.run()}>
          {probe.pending ? "Probing…" : "Probe over mTLS"}
        </button>
      ) : null}
      <ErrorPanel error={probe.error} />
      {result ? (
        <div class={result.reachable ? "notice" : "error"} role="status" data-testid="probe-result">
          <strong>{result.reachable ? `Reachable in ${result.latency_ms?.toFixed(0)} ms` : "Not reachable"}</strong>
          <p>
            {result.reachable
              ? `${result.tls_version ?? ""}, agent ${result.agent_version ?? "?"}, certificate ${result.certificate?.fingerprint_sha256.slice(0, 16) ?? "?"}…`
              : result.error}
          </p>
        </div>
      ) : null}
    </article>
  );
}

function Tags({ host, client, manage, onChange }: { host: Host; client: MusterClient; manage: boolean; onChange(): void }) {
  const [tag, setTag] = useState("");
  const add = useAction(async (value: string) => {
    await client.hosts.tags.add(host.id, value);
    setTag("");
    onChange();
  });
  const remove = useAction(async (value: string) => {
    await client.hosts.tags.remove(host.id, value);
    onChange();
  });
  return (
    <article class="panel">
      <h2>Tags</h2>
      {host.tags.length === 0 ? <p class="muted">No tags.</p> : null}
      <ul class="tags" aria-label="Tags">
        {host.tags.map((value) => (
          <li key={value} class="tag">
            {value}
            {manage ? (
              <button type="button" class="link" aria-label={`Remove tag ${value}`} disabled={remove.pending} onClick={() => remove.run(value)}>
                ×
              </button>
            ) : null}
          </li>
        ))}
      </ul>
      {manage ? (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            if (tag.trim()) void add.run(tag.trim());
          }}
        >
          <label for="new-tag">Add a tag</label>
          <input id="new-tag" value={tag} placeholder="e.g. zone:eu-1" onInput={(e) => setTag(e.currentTarget.value)} />
          <button type="submit" class="secondary" disabled={add.pending}>
            Add
          </button>
        </form>
      ) : null}
      <ErrorPanel error={add.error ?? remove.error} />
    </article>
  );
}

/** The latest commands, newest first (the list is a history, like the audit log). */
const COMMANDS_SHOWN = 10;

function Commands({ host, client, manage }: { host: Host; client: MusterClient; manage: boolean }) {
  const commands = useLoad(async (signal) => (await client.hosts.commands.listPage(host.id, { limit: COMMANDS_SHOWN }, { signal })).items, [host.id], {
    live: (event) => event.host_id === host.id && event.type.startsWith("command."),
  });
  const ping = useAction(async () => {
    const sent = await client.hosts.commands.send(host.id, { type: "ping", timeout_s: 60 });
    commands.refresh();
    return sent;
  });
  return (
    <article class="panel">
      <h2>Commands</h2>
      {manage ? (
        <button type="button" class="secondary" disabled={ping.pending} onClick={() => ping.run()}>
          {ping.pending ? "Sending…" : "Send ping"}
        </button>
      ) : null}
      <ErrorPanel error={ping.error ?? commands.error} />
      {commands.data && commands.data.length > 0 ? (
        <table class="commands">
          <thead>
            <tr>
              <th scope="col">Command</th>
              <th scope="col">Status</th>
              <th scope="col">Result</th>
              <th scope="col">Sent</th>
            </tr>
          </thead>
          <tbody>
            {commands.data.map((command) => (
              <tr key={command.id} data-command={command.id}>
                <td>{command.type}</td>
                <td>
                  <StatusBadge status={command.status} />
                </td>
                <td class="mono small">{command.error ?? (command.result === null ? "—" : JSON.stringify(command.result))}</td>
                <td title={command.created_at}>{timeAgo(command.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">{commands.data ? "No command sent yet." : "Loading commands…"}</p>
      )}
    </article>
  );
}

function Danger({ host, client }: { host: Host; client: MusterClient }) {
  const location = useLocation();
  const regenerate = useAction(() => client.hosts.regenerateToken(host.id));
  const remove = useAction(async () => {
    await client.hosts.delete(host.id);
    location.route(`/console/hosts?deleted=${host.id}`);
  });
  return (
    <article class="panel danger-zone">
      <h2>Token and deletion</h2>
      <div class="actions">
        <ConfirmButton label="New registration token" title="Issue a new registration token?" confirmLabel="Issue token" onConfirm={() => regenerate.run()}>
          <p>The host's earlier unused token stops working. Registering with the new one replaces the host's credentials.</p>
        </ConfirmButton>
        <ConfirmButton label="Delete host" title={`Delete ${host.hostname ?? host.id}?`} confirmLabel="Delete" danger disabled={remove.pending} onConfirm={() => remove.run()}>
          <p>
            The host's credentials stop working at once and its agent exits. This cannot be undone: to enroll the machine again, add a new host.
          </p>
        </ConfirmButton>
      </div>
      <ErrorPanel error={regenerate.error ?? remove.error} />
      {regenerate.result ? <Enrollment token={regenerate.result.registration_token} expiresAt={regenerate.result.registration_token_expires_at} address={host.address ?? ""} /> : null}
    </article>
  );
}

function HostAudit({ id, client }: { id: string; client: MusterClient }) {
  const trail = useLoad((signal) => client.audit.listPage({ target_id: id, limit: 20 }, { signal }), [id], { refreshMs: 10_000 });
  return (
    <section class="panel">
      <h2>Audit trail</h2>
      <ErrorPanel error={trail.error} />
      {trail.data ? <AuditTable entries={trail.data.items} /> : <Loading what="the audit trail" />}
      {trail.data?.next_cursor ? (
        <p>
          <a href={`/console/audit?target_id=${id}`}>The whole trail in the audit log →</a>
        </p>
      ) : null}
    </section>
  );
}
