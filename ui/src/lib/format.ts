export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function money(usd: number): string {
  return usd === 0 ? "$0" : usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** Status as text with a mark, so it never rests on colour alone. */
export const MARK: Record<string, string> = {
  pending: "○",
  ready: "◔",
  running: "▶",
  waiting: "⏸",
  succeeded: "✓",
  failed: "✕",
  skipped: "↷",
  cancelled: "⊘",
  interrupted: "⏏",
};
