import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api } from "../lib/api";
import { Alert } from "./Alert";

type Agent = { id: string; role: string; capabilities: string[]; maxConcurrency: number; rate: unknown; inFlight: number };
type Agents = { agents: Agent[]; queued: number; inFlight: number };

/** The agents, their limits and their live load (read again every two seconds). */
export function AgentsPage() {
  const data = useSignal<Agents | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    let alive = true;
    let timer = 0;
    const load = async () => {
      try {
        const d = await api<Agents>("GET", "/agents");
        if (alive) {
          data.value = d;
          error.value = null;
        }
      } catch (e) {
        if (alive) error.value = (e as Error).message;
      }
      if (alive) timer = window.setTimeout(load, 2000);
    };
    void load();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, []);
  const d = data.value;
  return (
    <section aria-labelledby="agents-h">
      <h1 id="agents-h">Agents</h1>
      <Alert text={error.value} />
      {d && (
        <>
          <p>
            {d.inFlight} task(s) in flight, {d.queued} queued.
          </p>
          <table>
            <caption class="sr-only">Agents with limits and load</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Role</th>
                <th scope="col">Capabilities</th>
                <th scope="col">In flight</th>
                <th scope="col">Limit</th>
                <th scope="col">Rate</th>
              </tr>
            </thead>
            <tbody>
              {d.agents.map((a) => (
                <tr key={a.id}>
                  <td>{a.id}</td>
                  <td>{a.role}</td>
                  <td>{a.capabilities.join(", ")}</td>
                  <td class="num">{a.inFlight}</td>
                  <td class="num">{a.maxConcurrency}</td>
                  <td>{a.rate === null ? "–" : JSON.stringify(a.rate)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
