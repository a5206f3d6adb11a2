import { describe, expect, it } from "vitest";
import { place, visible, ROW, type GraphDoc, type GraphNode } from "./graph";

function fan(width: number, grouped: boolean): GraphDoc {
  const nodes: GraphNode[] = [{ id: "root", status: "succeeded", rank: 0, order: 0, group: null, parent: null }];
  const edges: [number, number][] = [];
  for (let i = 0; i < width; i++) {
    nodes.push({ id: `w${i}`, status: i % 2 ? "running" : "succeeded", rank: 1, order: width - 1 - i, group: grouped ? 0 : null, parent: null });
    edges.push([0, i + 1], [i + 1, width + 1]);
  }
  nodes.push({ id: "join", status: "pending", rank: 2, order: 0, group: null, parent: null });
  return { nodes, groups: grouped ? [{ id: 0, size: width, counts: {} }] : [], edges };
}

describe("place", () => {
  it("folds a group into one item whose edges are drawn once", () => {
    const p = place(fan(60, true), new Set());
    expect(p.items.map((i) => i.kind)).toEqual(["task", "group", "task"]);
    expect(p.edges).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(p.height).toBe(ROW);
  });

  it("opens an expanded group in its order", () => {
    const doc = fan(60, true);
    const p = place(doc, new Set([0]));
    expect(p.items.length).toBe(62);
    // Order 0 of rank 1 is the last sibling.
    const first = p.items.find((i) => i.kind === "task" && i.y === 0 && i.x > 0);
    expect(first && first.kind === "task" && doc.nodes[first.node].id).toBe("w59");
    expect(p.edges.length).toBe(120);
    expect(p.height).toBe(60 * ROW);
  });

  it("culls to the viewport", () => {
    const p = place(fan(1000, false), new Set());
    const shown = visible(p, 200, 0, 500, 10 * ROW);
    expect(shown.length).toBeGreaterThan(5);
    expect(shown.length).toBeLessThan(20);
  });
});
