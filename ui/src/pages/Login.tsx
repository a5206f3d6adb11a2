import { useSignal } from "@preact/signals";
import { login, ApiError } from "../lib/api";

export function Login() {
  const key = useSignal("");
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    busy.value = true;
    error.value = null;
    try {
      await login(key.value.trim());
      key.value = "";
    } catch (err) {
      error.value =
        err instanceof ApiError && err.status === 401
          ? "That key is unknown or revoked."
          : err instanceof ApiError && err.status === 429
            ? "Too many wrong keys from here; wait a few seconds."
            : `Could not log in: ${(err as Error).message}`;
    } finally {
      busy.value = false;
    }
  };
  return (
    <main id="main" class="login">
      <h1>nofx</h1>
      <form onSubmit={submit}>
        <label for="key">API key</label>
        <input
          id="key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={key.value}
          onInput={(e) => (key.value = (e.target as HTMLInputElement).value)}
          aria-describedby={error.value ? "login-error" : "key-help"}
          aria-invalid={error.value ? true : undefined}
        />
        <p id="key-help" class="help">
          Paste a key made with <code>nofx keys create --project P</code>. It is kept by the server in an HttpOnly
          session cookie, never in this page.
        </p>
        {error.value && (
          <p id="login-error" class="error" role="alert">
            {error.value}
          </p>
        )}
        <button type="submit" disabled={busy.value}>
          Log in
        </button>
      </form>
    </main>
  );
}
