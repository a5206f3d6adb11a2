import { useSignal } from "@preact/signals";
import { api, ApiError, type Problem } from "../lib/api";
import { go } from "../lib/router";

/** Submit a plan (YAML or JSON) or a goal; every problem is shown at its task and field. */
export function NewRun() {
  const mode = useSignal<"plan" | "goal">("plan");
  const text = useSignal("name: hello\ntasks:\n  - id: a\n    tool: test:echo\n    inputs: { x: 1 }\n");
  const problems = useSignal<Problem[]>([]);
  const error = useSignal<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    problems.value = [];
    error.value = null;
    try {
      const created =
        mode.value === "goal"
          ? await api<{ id: string }>("POST", "/runs", { goal: text.value })
          : await api<{ id: string }>("POST", "/runs", text.value, text.value.trim().startsWith("{") ? "application/json" : "application/yaml");
      go(`/runs/${created.id}`);
    } catch (err) {
      if (err instanceof ApiError) {
        error.value = err.message;
        problems.value = err.problems;
      } else error.value = (err as Error).message;
    }
  };
  return (
    <section aria-labelledby="new-h">
      <h1 id="new-h">New run</h1>
      <form onSubmit={submit}>
        <fieldset>
          <legend>Submit</legend>
          <label>
            <input type="radio" name="mode" checked={mode.value === "plan"} onChange={() => (mode.value = "plan")} /> a plan (YAML or JSON)
          </label>{" "}
          <label>
            <input type="radio" name="mode" checked={mode.value === "goal"} onChange={() => (mode.value = "goal")} /> a goal for the planner
          </label>
        </fieldset>
        <label for="plan-text">{mode.value === "plan" ? "Plan" : "Goal"}</label>
        <textarea id="plan-text" rows={16} spellcheck={false} value={text.value} onInput={(e) => (text.value = (e.target as HTMLTextAreaElement).value)} aria-describedby={error.value ? "new-error" : undefined} />
        {error.value && (
          <div id="new-error" class="error" role="alert">
            <p>{error.value}</p>
            {problems.value.length > 0 && (
              <ul>
                {problems.value.map((p) => (
                  <li>
                    {p.task && <strong>task {p.task}</strong>} {p.field && <code>{p.field}</code>} {p.line ? `(line ${p.line})` : ""} {p.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
        <button type="submit">Submit</button>
      </form>
    </section>
  );
}
