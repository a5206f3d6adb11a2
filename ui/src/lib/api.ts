// The HTTP API, as the dashboard calls it: same origin, the session cookie, and the
// session's CSRF token on every change. A 401 sends the app back to the login page.

import { signal } from "@preact/signals";

export type Session = {
  project: string;
  keyId: string;
  scopes: string[];
  csrf: string | null;
  expiresAt: string | null;
};

/** The session: `undefined` until known, `null` when logged out. */
export const session = signal<Session | null | undefined>(undefined);

export type Problem = { task?: string | null; field?: string | null; line?: number | null; message: string };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const csrf = session.value?.csrf;
  if (method !== "GET" && csrf) headers["x-nofx-csrf"] = csrf;
  let payload: string | undefined;
  if (body !== undefined) {
    headers["content-type"] = contentType;
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const resp = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const text = await resp.text();
  const json = text ? safeJson(text) : null;
  if (!resp.ok) {
    const err = (json as { error?: { code?: string; message?: string; problems?: Problem[] } } | null)?.error;
    if (resp.status === 401 && path !== "/session") session.value = null;
    throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? `${method} ${path}: ${resp.status}`, err?.problems ?? []);
  }
  return json as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function login(key: string): Promise<void> {
  session.value = await api<Session>("POST", "/session", { key });
}

export async function logout(): Promise<void> {
  try {
    await api("DELETE", "/session");
  } finally {
    session.value = null;
  }
}

export async function whoami(): Promise<void> {
  try {
    session.value = await api<Session>("GET", "/session");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) session.value = null;
    else throw e;
  }
}
