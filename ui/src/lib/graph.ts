// The run graph as drawn: GET /runs/{id}/graph gives each task's rank and order and the
// groups wide layers fold into; here a folded group takes one slot of its rank, an expanded
// one a slot per task, and edges between the same two drawn items become one.

export type GraphNode = { id: string; status: string; rank: number; order: number; group: number | null; parent: number | null };
export type GraphGroup = { id: number; size: number; counts: Record<string, number> };
export type GraphDoc = { nodes: GraphNode[]; groups: GraphGroup[]; edges: [number, number][] };

export type Item =
  | { kind: "task"; node: number; x: number; y: number }
  | { kind: "group"; group: number; x: number; y: number };

export type Placed = {
  items: Item[];
  /** The item each node is drawn as. */
  itemOf: Int32Array;
  /** Edges between drawn items, each once. */
  edges: [number, number][];
  width: number;
  height: number;
};

export const COL = 220;
export const ROW = 34;
export const NODE_W = 180;
export const NODE_H = 26;

/** Places `doc`'s nodes with the groups in `expanded` open and the rest folded. */
export function place(doc: GraphDoc, expanded: ReadonlySet<number>): Placed {
  const n = doc.nodes.length;
  const byRank: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = doc.nodes[i].rank;
    (byRank[r] ??= []).push(i);
  }
  const items: Item[] = [];
  const itemOf = new Int32Array(n).fill(-1);
  let height = 0;
  byRank.forEach((layer, rank) => {
    if (!layer) return;
    layer.sort((a, b) => doc.nodes[a].order - doc.nodes[b].order);
    let slot = 0;
    const groupItem = new Map<number, number>();
    for (const i of layer) {
      const g = doc.nodes[i].group;
      if (g !== null && !expanded.has(g)) {
        let at = groupItem.get(g);
        if (at === undefined) {
          at = items.length;
          items.push({ kind: "group", group: g, x: rank * COL, y: slot++ * ROW });
          groupItem.set(g, at);
        }
        itemOf[i] = at;
        continue;
      }
      itemOf[i] = items.length;
      items.push({ kind: "task", node: i, x: rank * COL, y: slot++ * ROW });
    }
    height = Math.max(height, slot * ROW);
  });
  const seen = new Set<number>();
  const edges: [number, number][] = [];
  for (const [from, to] of doc.edges) {
    const a = itemOf[from];
    const b = itemOf[to];
    if (a < 0 || b < 0 || a === b) continue;
    const key = a * items.length + b;
    if (seen.has(key)) continue;
    seen.add(key);
    edges.push([a, b]);
  }
  return { items, itemOf, edges, width: byRank.length * COL, height };
}

/** Items whose box meets the rectangle (in graph units): what a frame draws. */
export function visible(p: Placed, x0: number, y0: number, x1: number, y1: number): number[] {
  const out: number[] = [];
  p.items.forEach((it, k) => {
    if (it.x + NODE_W >= x0 && it.x <= x1 && it.y + NODE_H >= y0 && it.y <= y1) out.push(k);
  });
  return out;
}
