import { PageTitle } from "../components/page.js";

export function NotFound() {
  return (
    <section>
      <PageTitle title="Not found">No such page</PageTitle>
      <p>
        The console has no page at this address. Go to the <a href="/console">overview</a> or the <a href="/console/hosts">hosts</a>.
      </p>
    </section>
  );
}
