import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api, ApiError, type Problem } from "../lib/api";
import { go } from "../lib/router";
import { Alert } from "./Alert";

type InputSpec = { type: string; default?: unknown; description?: string };
type Template = {
  id: string;
  name: string;
  description: string;
  category: string;
  plan: { inputs?: Record<string, InputSpec> };
  usageCount: number;
  shipped: boolean;
};

/** The templates the project sees; instantiate one with its inputs as a form. */
export function Templates() {
  const list = useSignal<Template[]>([]);
  const open = useSignal<string | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    api<{ templates: Template[] }>("GET", "/templates").then(
      (d) => (list.value = d.templates),
      (e) => (error.value = (e as Error).message),
    );
  }, []);
  return (
    <section aria-labelledby="tpl-h">
      <h1 id="tpl-h">Templates</h1>
      <Alert text={error.value} />
      {list.value.length === 0 && !error.value && <p class="dim">No templates.</p>}
      <ul class="cards">
        {list.value.map((t) => (
          <li class="card" key={t.id}>
            <h2>{t.name}</h2>
            <p>{t.description}</p>
            <p class="dim">
              <code>{t.id}</code> · {t.category} · used {t.usageCount} times{t.shipped ? " · shipped" : ""}
            </p>
            {open.value === t.id ? (
              <Instantiate t={t} />
            ) : (
              <button type="button" onClick={() => (open.value = t.id)}>
                Use…
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Instantiate({ t }: { t: Template }) {
  const inputs = Object.entries(t.plan.inputs ?? {});
  const values = useSignal<Record<string, string>>(Object.fromEntries(inputs.map(([k, s]) => [k, s.default === undefined ? "" : typeof s.default === "string" ? s.default : JSON.stringify(s.default)])));
  const problems = useSignal<Problem[]>([]);
  const error = useSignal<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    error.value = null;
    problems.value = [];
    const body: Record<string, unknown> = {};
    for (const [k, s] of inputs) {
      const v = values.value[k];
      if (v === "") continue;
      body[k] = s.type === "string" ? v : parse(v);
    }
    try {
      const run = await api<{ id: string }>("POST", `/templates/${t.id}/instantiate`, { inputs: body });
      go(`/runs/${run.id}`);
    } catch (err) {
      error.value = (err as Error).message;
      problems.value = err instanceof ApiError ? err.problems : [];
    }
  };
  return (
    <form onSubmit={submit} aria-label={`Inputs of ${t.name}`}>
      {inputs.length === 0 && <p class="dim">No inputs.</p>}
      {inputs.map(([k, s]) => (
        <p key={k}>
          <label for={`in-${t.id}-${k}`}>
            {k} <span class="dim">({s.type}{s.default === undefined ? ", required" : ""})</span>
          </label>{" "}
          <input
            id={`in-${t.id}-${k}`}
            value={values.value[k]}
            required={s.default === undefined}
            onInput={(e) => {
              values.value = { ...values.value, [k]: (e.target as HTMLInputElement).value };
            }}
          />{" "}
          {s.description && <span class="dim">{s.description}</span>}
        </p>
      ))}
      {error.value && (
        <div class="error" role="alert">
          <p>{error.value}</p>
          <ul>
            {problems.value.map((p) => (
              <li>
                {p.field && <code>{p.field}</code>} {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <button type="submit">Start run</button>
    </form>
  );
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
