// Pages live under /ui/: the path is the route, so pages can be linked and reloaded.

import { signal } from "@preact/signals";

const BASE = "/ui";

export const path = signal(current());

function current(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "/";
  return p === "" ? "/" : p;
}

addEventListener("popstate", () => {
  path.value = current();
});

export function go(to: string): void {
  if (to === path.value) return;
  history.pushState(null, "", BASE + to);
  path.value = to;
}

/** An in-app link's click: navigates without a reload (a modified click opens normally). */
export function onLink(e: MouseEvent, to: string): void {
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  go(to);
}

export function href(to: string): string {
  return BASE + to;
}
