import type { HostType, HostWithRegistrationToken } from "@muster/sdk/client";
import { useState } from "preact/hooks";
import { CodeBlock } from "../components/copy.js";
import { ErrorPanel, StatusBadge } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { agentCommand } from "../agent-command.js";
import { dateTime, parseTags } from "../format.js";
import { useAction, useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";

export function AddHost() {
  const { client, me } = useSession();
  const can = abilitiesOf(me);
  const [type, setType] = useState<HostType>(can.createRegularHosts ? "regular" : "byoc");
  const [teamId, setTeamId] = useState(me.team?.id ?? "");
  const [tags, setTags] = useState("");
  const [provider, setProvider] = useState("");
  const [zone, setZone] = useState("");
  const teams = useLoad((signal) => (can.seesAllTeams ? client.teams.list({ limit: 500 }, { signal }).toArray({ max: 500 }) : Promise.resolve([])), []);
  const create = useAction(() =>
    client.hosts.create({
      type,
      ...(type === "byoc" && teamId ? { team_id: teamId } : {}),
      ...(tags.trim() ? { tags: parseTags(tags) } : {}),
      ...(provider.trim() ? { provider: provider.trim() } : {}),
      ...(zone.trim() ? { availability_zone: zone.trim() } : {}),
    }),
  );

  if (!can.createHosts) {
    return (
      <section>
        <PageTitle title="Add host">Add a host</PageTitle>
        <div class="error" role="alert">
          <strong>Your role does not allow this</strong>
          <p>Members read their team's hosts; adding one needs the team's owner or an admin.</p>
        </div>
      </section>
    );
  }
  if (create.result) return <Created created={create.result} />;

  return (
    <section>
      <PageTitle title="Add host">Add a host</PageTitle>
      <form
        class="stacked"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        {can.createRegularHosts ? (
          <fieldset>
            <legend>Type</legend>
            <label>
              <input type="radio" name="type" value="regular" checked={type === "regular"} onChange={() => setType("regular")} /> regular: a platform host, in no team
            </label>
            <label>
              <input type="radio" name="type" value="byoc" checked={type === "byoc"} onChange={() => setType("byoc")} /> byoc: a team's own machine
            </label>
          </fieldset>
        ) : (
          <p>
            A <strong>byoc</strong> host of {me.team?.name ?? "your team"}.
          </p>
        )}
        {type === "byoc" && can.seesAllTeams ? (
          <>
            <label for="host-team">Team</label>
            <select id="host-team" required value={teamId} onChange={(e) => setTeamId(e.currentTarget.value)}>
              <option value="">choose a team</option>
              {(teams.data ?? []).map((team) => (
                <option key={team.id} value={team.id}>
                  {team.name}
                </option>
              ))}
            </select>
          </>
        ) : null}
        <label for="host-tags">Tags</label>
        <input id="host-tags" value={tags} placeholder="gpu zone:eu-1" onInput={(e) => setTags(e.currentTarget.value)} aria-describedby="host-tags-help" />
        <p id="host-tags-help" class="muted">
          Separated by spaces or commas; each 1–63 of a–z 0–9 - _ . : =, starting with a letter or digit.
        </p>
        <label for="host-provider">Provider (optional)</label>
        <input id="host-provider" value={provider} onInput={(e) => setProvider(e.currentTarget.value)} />
        <label for="host-zone">Availability zone (optional)</label>
        <input id="host-zone" value={zone} onInput={(e) => setZone(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled={create.pending}>
          {create.pending ? "Creating…" : "Create host and token"}
        </button>
      </form>
      <ErrorPanel error={create.error} />
    </section>
  );
}

/** The new host's one-time token and the command for its machine; then it waits, live, until the agent has it online. */
function Created({ created }: { created: HostWithRegistrationToken }) {
  const { client } = useSession();
  const id = created.host.id;
  const host = useLoad((signal) => client.hosts.get(id, { signal }), [id], { live: (event) => event.host_id === id });
  const status = host.data?.status ?? created.host.status;
  return (
    <section>
      <PageTitle title="Host created">Host created</PageTitle>
      <p>
        <a href={`/console/hosts/${id}`} class="mono">
          {id}
        </a>{" "}
        <StatusBadge status={status} />
      </p>
      <Enrollment token={created.registration_token} expiresAt={created.registration_token_expires_at} address="" />
      <div class={status === "online" ? "notice" : "waiting"} role="status" aria-live="polite" data-testid="enrollment-status">
        {status === "online" ? (
          <>
            <strong>Online.</strong> {host.data?.hostname ?? id} registered and sent its first heartbeat.{" "}
            <a href={`/console/hosts/${id}`}>Open the host →</a>
          </>
        ) : (
          <>Waiting for the agent to register and send its first heartbeat…</>
        )}
      </div>
      <ErrorPanel error={host.error} />
    </section>
  );
}

/** A registration token, shown once, and the exact agent command with the address the operator types in. */
export function Enrollment({ token, expiresAt, address: initial }: { token: string; expiresAt: string; address: string }) {
  const [address, setAddress] = useState(initial);
  return (
    <div class="enrollment">
      <p>
        <strong>Registration token</strong>, shown this once; valid until {dateTime(expiresAt)}, for one registration:
      </p>
      <CodeBlock id="registration-token" text={token} copyLabel="Copy token" />
      <label for="agent-address">Where the host's agent will listen (IP:PORT)</label>
      <input id="agent-address" value={address} placeholder="10.0.0.7:7070" onInput={(e) => setAddress(e.currentTarget.value)} />
      <p>On the machine, with the muster-agent executable in the current folder:</p>
      <CodeBlock id="agent-command" text={agentCommand(location.origin, token, address)} copyLabel="Copy command" />
    </div>
  );
}
