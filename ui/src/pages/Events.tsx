import { useSignal, useComputed } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import type { RunEvent } from "../lib/run";
import { when } from "../lib/format";

/** The run's event log (the last 5,000), filtered by type, following new events. */
export function Events({ events }: { events: RunEvent[] }) {
  const type = useSignal("");
  const followNew = useSignal(true);
  const list = useRef<HTMLOListElement>(null);
  const types = useComputed(() => Array.from(new Set(events.map((e) => e.type))).sort());
  const shown = type.value ? events.filter((e) => e.type === type.value) : events;
  useEffect(() => {
    if (followNew.value && list.current) list.current.scrollTop = list.current.scrollHeight;
  });
  return (
    <div>
      <label>
        Type{" "}
        <select value={type.value} onChange={(e) => (type.value = (e.target as HTMLSelectElement).value)}>
          <option value="">any</option>
          {types.value.map((t) => (
            <option value={t}>{t}</option>
          ))}
        </select>
      </label>{" "}
      <label>
        <input type="checkbox" checked={followNew.value} onChange={(e) => (followNew.value = (e.target as HTMLInputElement).checked)} /> Follow
      </label>
      <ol class="events mono" ref={list} aria-label="Events">
        {shown.slice(-1000).map((e) => (
          <li key={e.seq}>
            <span class="dim">#{e.seq}</span> {when(e.at)} <strong>{e.type}</strong> {e.taskId ?? ""} <span class="dim">{JSON.stringify(e.data)}</span>
          </li>
        ))}
      </ol>
    </div>
  );
}
