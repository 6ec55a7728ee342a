import type { MeResponse } from "@muster/sdk/client";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { LiveFeed } from "./live.js";
import { abilitiesOf } from "./permissions.js";
import { clientFor, forgetKey, SessionContext, storedKey, type Session } from "./session.js";
import { AddHost } from "./pages/add-host.js";
import { ApiKeys } from "./pages/api-keys.js";
import { Audit } from "./pages/audit.js";
import { HostDetail } from "./pages/host-detail.js";
import { Hosts } from "./pages/hosts.js";
import { NotFound } from "./pages/not-found.js";
import { Overview } from "./pages/overview.js";
import { SignIn } from "./pages/sign-in.js";
import { TeamDetail, Teams } from "./pages/teams.js";
import { Users } from "./pages/users.js";

export function App() {
  return (
    <LocationProvider scope="/console">
      <Console />
    </LocationProvider>
  );
}

/** Signed in or not: the key in sessionStorage is checked against GET /v1/me before anything else shows. */
function Console() {
  const [signedIn, setSignedIn] = useState<{ key: string; me: MeResponse } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [checking, setChecking] = useState(storedKey() !== null);

  useEffect(() => {
    const key = storedKey();
    if (key === null) return;
    clientFor(key)
      .me()
      .then((me) => setSignedIn({ key, me }))
      .catch(() => {
        forgetKey();
        setNotice("Your session has ended: sign in again.");
      })
      .finally(() => setChecking(false));
  }, []);

  const session = useMemo<Session | null>(() => {
    if (!signedIn) return null;
    const client = clientFor(signedIn.key);
    const signOut = (reason?: string) => {
      forgetKey();
      setSignedIn(null);
      setNotice(reason ?? "Signed out.");
    };
    const live = new LiveFeed(client, () => signOut("The API key is no longer accepted: sign in again."));
    return { client, me: signedIn.me, live, signOut };
  }, [signedIn]);
  useEffect(() => {
    session?.live.start();
    return () => session?.live.stop();
  }, [session]);

  if (checking) return <p class="muted center">Checking your session…</p>;
  if (!session) return <SignIn notice={notice} onSignedIn={(key, me) => (setNotice(null), setSignedIn({ key, me }))} />;
  return (
    <SessionContext.Provider value={session}>
      <Layout session={session}>
        <Router>
          <Route path="/console" component={Overview} />
          <Route path="/console/hosts" component={Hosts} />
          <Route path="/console/hosts/new" component={AddHost} />
          <Route path="/console/hosts/:id" component={HostDetail} />
          <Route path="/console/audit" component={Audit} />
          <Route path="/console/teams" component={Teams} />
          <Route path="/console/teams/:id" component={TeamDetail} />
          <Route path="/console/api-keys" component={ApiKeys} />
          <Route path="/console/users" component={Users} />
          <Route default component={NotFound} />
        </Router>
      </Layout>
    </SessionContext.Provider>
  );
}

function Layout({ session, children }: { session: Session; children: preact.ComponentChildren }) {
  const { path } = useLocation();
  const can = abilitiesOf(session.me);
  const main = useRef<HTMLElement>(null);
  const firstPage = useRef(true);
  // A page reached through the menu or a link moves focus to its heading (its main region while the heading is not drawn yet),
  // so keyboard and screen-reader users start there; the first page keeps the browser's own start, where the skip link is.
  useEffect(() => {
    if (firstPage.current) {
      firstPage.current = false;
      return;
    }
    (main.current?.querySelector<HTMLElement>("h1") ?? main.current)?.focus();
  }, [path]);

  const links: [string, string, boolean][] = [
    ["/console", "Overview", true],
    ["/console/hosts", "Hosts", true],
    ["/console/hosts/new", "Add host", can.createHosts],
    ["/console/audit", "Audit log", can.readAudit],
    ["/console/teams", "Teams", true],
    ["/console/api-keys", "API keys", true],
    ["/console/users", "Users", can.manageUsers],
  ];
  const current = (href: string) => (href === "/console" ? path === href || path === "/console/" : path === href);
  const { me } = session;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/console">
          Muster
        </a>
        <nav aria-label="Console">
          <ul>
            {links
              .filter(([, , shown]) => shown)
              .map(([href, label]) => (
                <li key={href}>
                  <a href={href} aria-current={current(href) ? "page" : undefined}>
                    {label}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
        <div class="whoami">
          <span>
            {me.user.email} · <strong data-role={me.role}>{me.role}</strong>
            {me.team ? ` of ${me.team.name}` : ""}
          </span>
          <button type="button" class="secondary" onClick={() => session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
