import type { TeamRole } from "@muster/sdk/client";
import { useRoute } from "preact-iso";
import { useState } from "preact/hooks";
import { ConfirmButton } from "../components/confirm.js";
import { ErrorPanel, Loading } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { dateTime } from "../format.js";
import { useAction, useLoad } from "../live.js";
import { abilitiesOf } from "../permissions.js";
import { useSession } from "../session.js";

export function Teams() {
  const { client, me } = useSession();
  const can = abilitiesOf(me);
  const teams = useLoad((signal) => client.teams.list({ limit: 500 }, { signal }).toArray(), []);
  const [name, setName] = useState("");
  const create = useAction(async () => {
    const created = await client.teams.create({ name: name.trim() });
    setName("");
    teams.refresh();
    return created;
  });

  return (
    <section>
      <PageTitle title="Teams">Teams</PageTitle>
      <ErrorPanel error={teams.error} />
      {teams.data ? (
        teams.data.length === 0 ? (
          <p class="empty">No team yet.</p>
        ) : (
          <ul class="list">
            {teams.data.map((team) => (
              <li key={team.id}>
                <a href={`/console/teams/${team.id}`}>{team.name}</a> <span class="muted mono small">{team.id}</span>
              </li>
            ))}
          </ul>
        )
      ) : teams.error ? null : (
        <Loading what="teams" />
      )}
      {can.createTeams ? (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <label for="team-name">New team</label>
          <input id="team-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit" class="secondary" disabled={create.pending || !name.trim()}>
            Create team
          </button>
        </form>
      ) : null}
      <ErrorPanel error={create.error} />
    </section>
  );
}

export function TeamDetail() {
  const { params } = useRoute();
  const teamId = params.id!;
  const { client, me } = useSession();
  const manage = abilitiesOf(me).manageMembers(teamId);
  const team = useLoad(async (signal) => (await client.teams.list({ limit: 500 }, { signal }).toArray()).find((t) => t.id === teamId) ?? null, [teamId]);
  const members = useLoad((signal) => client.teams.members.list(teamId, { limit: 500 }, { signal }).toArray(), [teamId]);
  const [userId, setUserId] = useState("");
  const [role, setRole] = useState<TeamRole>("member");
  const add = useAction(async () => {
    await client.teams.members.add(teamId, { user_id: userId.trim(), role });
    setUserId("");
    members.refresh();
  });
  const remove = useAction(async (user: string) => {
    await client.teams.members.remove(teamId, user);
    members.refresh();
  });

  return (
    <section>
      <PageTitle title={team.data?.name ?? teamId}>Team {team.data?.name ?? teamId}</PageTitle>
      <p class="muted mono">{teamId}</p>
      <h2>Members</h2>
      <ErrorPanel error={members.error} what="Team" />
      {members.data ? (
        <div class="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col" class="wide">Since</th>
                {manage ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {members.data.map((member) => (
                <tr key={member.user_id}>
                  <td class="mono small">
                    {member.user_id}
                    {member.user_id === me.user.id ? " (you)" : ""}
                  </td>
                  <td>{member.role}</td>
                  <td class="wide">{dateTime(member.created_at)}</td>
                  {manage ? (
                    <td>
                      <ConfirmButton label="Remove" title={`Remove ${member.user_id}?`} confirmLabel="Remove" danger onConfirm={() => remove.run(member.user_id)}>
                        <p>Their API keys for this team stop working at once.</p>
                      </ConfirmButton>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : members.error ? null : (
        <Loading what="members" />
      )}
      <ErrorPanel error={remove.error} />
      {manage ? (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void add.run();
          }}
        >
          <label for="member-user">Add a user (ID)</label>
          <input id="member-user" required value={userId} placeholder="usr-…" onInput={(e) => setUserId(e.currentTarget.value)} />
          <label for="member-role">as</label>
          <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as TeamRole)}>
            <option value="member">member</option>
            <option value="owner">owner</option>
          </select>
          <button type="submit" class="secondary" disabled={add.pending || !userId.trim()}>
            Add member
          </button>
        </form>
      ) : null}
      <ErrorPanel error={add.error} />
    </section>
  );
}
