import { useSignal } from "@preact/signals";
import { useEffect, useMemo, useRef } from "preact/hooks";
import { api } from "../lib/api";
import { place, visible, NODE_H, NODE_W, type GraphDoc, type Placed } from "../lib/graph";
import type { Run, Task } from "../lib/run";
import { MARK, duration } from "../lib/format";
import { TaskDetail } from "./TaskDetail";

const COLORS: Record<string, [string, string]> = {
  pending: ["#e5e7eb", "#374151"],
  ready: ["#dbeafe", "#1e3a5f"],
  running: ["#bfdbfe", "#1d4ed8"],
  waiting: ["#fef3c7", "#92400e"],
  succeeded: ["#dcfce7", "#166534"],
  failed: ["#fee2e2", "#991b1b"],
  skipped: ["#f3f4f6", "#6b7280"],
  cancelled: ["#f3f4f6", "#6b7280"],
};

/** The run's DAG, left to right by rank, on a canvas: only what is in view is drawn. */
export function Graph({ run, shape }: { run: Run; shape: number }) {
  const doc = useSignal<GraphDoc | null>(null);
  const error = useSignal<string | null>(null);
  const expanded = useSignal<ReadonlySet<number>>(new Set());
  const failedOnly = useSignal(false);
  const selected = useSignal<number | null>(null);
  const view = useRef({ x: -20, y: -20, k: 1 });
  const canvas = useRef<HTMLCanvasElement>(null);
  const redraw = () => draw();

  useEffect(() => {
    api<GraphDoc>("GET", `/runs/${run.id}/graph`).then(
      (d) => (doc.value = d),
      (e) => (error.value = (e as Error).message),
    );
  }, [run.id, shape]);

  const placed: Placed | null = useMemo(() => (doc.value ? place(doc.value, expanded.value) : null), [doc.value, expanded.value]);
  const members: number[][] = useMemo(() => {
    const out: number[][] = (doc.value?.groups ?? []).map(() => []);
    doc.value?.nodes.forEach((nd, i) => {
      if (nd.group !== null) out[nd.group]?.push(i);
    });
    return out;
  }, [doc.value]);

  const statusOf = (i: number): Task | undefined => {
    const d = doc.value;
    if (!d) return undefined;
    const at = run.index.get(d.nodes[i].id);
    return at === undefined ? undefined : run.tasks[at];
  };

  function draw() {
    const c = canvas.current;
    const p = placed;
    const d = doc.value;
    if (!c || !p || !d) return;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== w * dpr || c.height !== h * dpr) {
      c.width = w * dpr;
      c.height = h * dpr;
    }
    const g = c.getContext("2d");
    if (!g) return;
    const { x, y, k } = view.current;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.setTransform(dpr * k, 0, 0, dpr * k, -x * k * dpr, -y * k * dpr);
    const x0 = x;
    const y0 = y;
    const x1 = x + w / k;
    const y1 = y + h / k;
    const shown = visible(p, x0 - 200, y0 - 200, x1 + 200, y1 + 200);
    const on = new Set(shown);
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    g.strokeStyle = dark ? "#4b5563" : "#9ca3af";
    g.lineWidth = 1 / k;
    g.beginPath();
    for (const [a, b] of p.edges) {
      if (!on.has(a) && !on.has(b)) continue;
      const A = p.items[a];
      const B = p.items[b];
      g.moveTo(A.x + NODE_W, A.y + NODE_H / 2);
      g.lineTo(B.x, B.y + NODE_H / 2);
    }
    g.stroke();
    const detail = k > 0.45;
    g.font = "12px system-ui, sans-serif";
    g.textBaseline = "middle";
    for (const n of shown) {
      const it = p.items[n];
      let status: string;
      let label: string;
      if (it.kind === "task") {
        status = statusOf(it.node)?.status ?? d.nodes[it.node].status;
        if (failedOnly.value && status !== "failed") continue;
        label = `${MARK[status] ?? "?"} ${d.nodes[it.node].id}`;
      } else {
        const of = members[it.group] ?? [];
        const tally: Record<string, number> = {};
        for (const m of of) {
          const s = statusOf(m)?.status ?? d.nodes[m].status;
          tally[s] = (tally[s] ?? 0) + 1;
        }
        status = tally.failed ? "failed" : tally.running ? "running" : tally.succeeded === of.length ? "succeeded" : "ready";
        if (failedOnly.value && !tally.failed) continue;
        label = `▸ ${of.length} tasks: ` + Object.entries(tally).map(([s, v]) => `${MARK[s] ?? ""}${v}`).join(" ");
      }
      const [fill, ink] = COLORS[status] ?? COLORS.pending;
      g.fillStyle = fill;
      g.fillRect(it.x, it.y, NODE_W, NODE_H);
      if (selected.value === n) {
        g.strokeStyle = "#f59e0b";
        g.lineWidth = 3 / k;
        g.strokeRect(it.x, it.y, NODE_W, NODE_H);
      }
      if (detail) {
        g.fillStyle = ink;
        g.fillText(label.length > 26 ? label.slice(0, 25) + "…" : label, it.x + 6, it.y + NODE_H / 2, NODE_W - 10);
      }
    }
    g.setTransform(1, 0, 0, 1, 0, 0);
  }

  useEffect(() => {
    const id = requestAnimationFrame(draw);
    return () => cancelAnimationFrame(id);
  });

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    let drag: { x: number; y: number } | null = null;
    let raf = 0;
    const later = () => {
      if (!raf)
        raf = requestAnimationFrame(() => {
          raf = 0;
          draw();
        });
    };
    const down = (e: PointerEvent) => {
      drag = { x: e.clientX, y: e.clientY };
      c.setPointerCapture(e.pointerId);
    };
    const move = (e: PointerEvent) => {
      if (!drag) return;
      const v = view.current;
      v.x -= (e.clientX - drag.x) / v.k;
      v.y -= (e.clientY - drag.y) / v.k;
      drag = { x: e.clientX, y: e.clientY };
      later();
    };
    const up = (e: PointerEvent) => {
      const moved = drag && (Math.abs(e.clientX - drag.x) > 2 || Math.abs(e.clientY - drag.y) > 2);
      drag = null;
      if (moved || !placed) return;
      const r = c.getBoundingClientRect();
      const v = view.current;
      const gx = v.x + (e.clientX - r.left) / v.k;
      const gy = v.y + (e.clientY - r.top) / v.k;
      const hit = visible(placed, gx, gy, gx, gy)[0];
      if (hit === undefined) return;
      pick(hit);
    };
    const wheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      const v = view.current;
      const px = e.clientX - r.left;
      const py = e.clientY - r.top;
      const k = Math.min(3, Math.max(0.05, v.k * Math.exp(-e.deltaY * 0.0015)));
      v.x += px / v.k - px / k;
      v.y += py / v.k - py / k;
      v.k = k;
      later();
    };
    c.addEventListener("pointerdown", down);
    c.addEventListener("pointermove", move);
    c.addEventListener("pointerup", up);
    c.addEventListener("wheel", wheel, { passive: false });
    return () => {
      c.removeEventListener("pointerdown", down);
      c.removeEventListener("pointermove", move);
      c.removeEventListener("pointerup", up);
      c.removeEventListener("wheel", wheel);
    };
  }, [placed]);

  const pick = (n: number) => {
    const p = placed;
    if (!p) return;
    const it = p.items[n];
    if (it.kind === "group") {
      const next = new Set(expanded.value);
      next.add(it.group);
      expanded.value = next;
      selected.value = null;
      return;
    }
    selected.value = n;
    // Keep the picked item in view.
    const c = canvas.current;
    const v = view.current;
    if (c && (it.x < v.x || it.y < v.y || it.x + NODE_W > v.x + c.clientWidth / v.k || it.y + NODE_H > v.y + c.clientHeight / v.k)) {
      v.x = it.x - c.clientWidth / v.k / 3;
      v.y = it.y - c.clientHeight / v.k / 3;
    }
    redraw();
  };

  // Arrow keys walk the drawing: left/right across ranks, up/down within one.
  const key = (e: KeyboardEvent) => {
    const p = placed;
    if (!p || p.items.length === 0) return;
    const cur = selected.value ?? 0;
    const at = p.items[cur];
    let best: number | null = null;
    let score = Infinity;
    const dir = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowDown: [0, 1], ArrowUp: [0, -1] }[e.key];
    if (e.key === "Enter" && selected.value !== null) {
      pick(selected.value);
      return;
    }
    if (!dir) return;
    e.preventDefault();
    p.items.forEach((it, k) => {
      const dx = it.x - at.x;
      const dy = it.y - at.y;
      if (dir[0] && Math.sign(dx) !== dir[0]) return;
      if (dir[1] && (dx !== 0 || Math.sign(dy) !== dir[1])) return;
      const s = Math.abs(dx) * 4 + Math.abs(dy);
      if (s < score) {
        score = s;
        best = k;
      }
    });
    if (best !== null) pick(best);
  };

  if (error.value) return <p class="error">{error.value}</p>;
  if (!doc.value || !placed) return <p role="status">Laying out the graph…</p>;
  const sel = selected.value !== null && placed.items[selected.value]?.kind === "task" ? (placed.items[selected.value] as { node: number }).node : null;
  const task = sel !== null ? statusOf(sel) : undefined;
  return (
    <div class="graph">
      <div class="graph-tools">
        <label>
          <input type="checkbox" checked={failedOnly.value} onChange={(e) => (failedOnly.value = (e.target as HTMLInputElement).checked)} /> Failed only
        </label>
        <button type="button" onClick={() => ((view.current = { x: -20, y: -20, k: 1 }), redraw())}>
          Reset view
        </button>
        {expanded.value.size > 0 && (
          <button type="button" onClick={() => (expanded.value = new Set())}>
            Fold groups
          </button>
        )}
        <span class="dim">
          {doc.value.nodes.length} tasks · drag to pan · wheel to zoom · arrow keys to move · Enter opens a group
        </span>
      </div>
      <canvas
        ref={canvas}
        tabIndex={0}
        role="img"
        aria-label={`Task graph of ${doc.value.nodes.length} tasks; the Tasks view lists them as a table`}
        onKeyDown={key}
      />
      {sel !== null && (
        <aside class="detail" aria-label="Selected task">
          <TaskDetail runId={run.id} taskId={doc.value.nodes[sel].id} version={task ? `${task.status}:${task.attempts}` : ""} />
          {task?.startedAt && task.status === "running" && <p>Running for {duration(Date.now() - task.startedAt)}</p>}
        </aside>
      )}
    </div>
  );
}
