import { useState } from "preact/hooks";
import { ErrorPanel, Loading } from "../components/feedback.js";
import { PageTitle } from "../components/page.js";
import { Pager, useCursor } from "../components/pager.js";
import { dateTime } from "../format.js";
import { useAction, useLoad } from "../live.js";
import { useSession } from "../session.js";

/** Users (admins only): whom to add to teams and make keys for. */
export function Users() {
  const { client } = useSession();
  const pager = useCursor("");
  const users = useLoad((signal) => client.users.listPage({ limit: 100, ...(pager.cursor ? { cursor: pager.cursor } : {}) }, { signal }), [pager.cursor]);
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const create = useAction(async () => {
    const created = await client.users.create({ email: email.trim(), ...(name.trim() ? { name: name.trim() } : {}) });
    setEmail("");
    setName("");
    users.refresh();
    return created;
  });

  return (
    <section>
      <PageTitle title="Users">Users</PageTitle>
      <ErrorPanel error={users.error} />
      {users.data ? (
        <>
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col" class="wide">Name</th>
                  <th scope="col">ID</th>
                  <th scope="col" class="wide">Created</th>
                </tr>
              </thead>
              <tbody>
                {users.data.items.map((user) => (
                  <tr key={user.id}>
                    <td>
                      {user.email}
                      {user.is_admin ? " (admin)" : ""}
                    </td>
                    <td class="wide">{user.name ?? "—"}</td>
                    <td class="mono small">{user.id}</td>
                    <td class="wide">{dateTime(user.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager pager={pager} nextCursor={users.data.next_cursor} count={users.data.items.length} />
        </>
      ) : users.error ? null : (
        <Loading what="users" />
      )}
      <h2>Create a user</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <label for="user-email">Email</label>
        <input id="user-email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <label for="user-name">Name</label>
        <input id="user-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit" class="secondary" disabled={create.pending || !email.trim()}>
          Create user
        </button>
      </form>
      <ErrorPanel error={create.error} />
      {create.result ? (
        <p class="notice" role="status">
          Created {create.result.user.email}: <span class="mono">{create.result.user.id}</span>. Add them to a team, then make them a key.
        </p>
      ) : null}
    </section>
  );
}
