import { api } from "./api";
import type { RunEvent } from "./run";

const PAGE = 5000;

/** Every event of a run, read page by page. */
export async function allEvents(runId: string, alive: () => boolean = () => true): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await api<{ events: RunEvent[] }>("GET", `/runs/${runId}/events?after=${after}&limit=${PAGE}`);
    all.push(...page.events);
    if (page.events.length < PAGE || !alive()) return all;
    after = page.events[page.events.length - 1].seq;
  }
}
