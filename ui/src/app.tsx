import { session, logout } from "./lib/api";
import { path, onLink, href } from "./lib/router";
import { Login } from "./pages/Login";
import { Runs } from "./pages/Runs";
import { RunPage } from "./pages/Run";
import { NewRun } from "./pages/NewRun";
import { Waiting } from "./pages/Waiting";
import { Templates } from "./pages/Templates";
import { AgentsPage } from "./pages/Agents";
import { UsagePage } from "./pages/Usage";

const NAV: [string, string][] = [
  ["/", "Runs"],
  ["/new", "New run"],
  ["/waiting", "Approvals"],
  ["/templates", "Templates"],
  ["/agents", "Agents"],
  ["/usage", "Usage"],
];

export function App() {
  const s = session.value;
  if (s === undefined) return <p class="loading" role="status">Loading…</p>;
  if (s === null) return <Login />;
  const p = path.value;
  const run = /^\/runs\/([0-9a-f-]{36})$/.exec(p);
  let page;
  if (run) page = <RunPage id={run[1]} key={run[1]} />;
  else if (p === "/new") page = <NewRun />;
  else if (p === "/waiting") page = <Waiting />;
  else if (p === "/templates") page = <Templates />;
  else if (p === "/agents") page = <AgentsPage />;
  else if (p === "/usage") page = <UsagePage />;
  else page = <Runs />;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href("/")} onClick={(e) => onLink(e, "/")}>
          nofx
        </a>
        <nav aria-label="Main">
          {NAV.map(([to, label]) => (
            <a href={href(to)} onClick={(e) => onLink(e, to)} aria-current={p === to ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          project <strong>{s.project}</strong>
        </span>
        <button type="button" onClick={() => void logout()}>
          Log out
        </button>
      </header>
      <main id="main">{page}</main>
    </>
  );
}
