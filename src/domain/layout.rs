//! Where each task of a run's graph is drawn, left to right: its rank (the longest path of
//! dependencies to it; a subtask comes after its parent starts, and a task that depends on a
//! decomposed one comes after that one's whole sub-plan), its order within the rank
//! (barycenter sweeps, which keep edges short and few of them crossing), and the groups that
//! wide layers of alike siblings fold into. A layout depends only on the graph's shape, so it
//! is computed once per shape; statuses are laid over it when it is read.

use super::graph::TaskGraph;
use std::collections::HashMap;

/// Siblings alike in everything (parent, dependencies, dependents) fold into one group when
/// there are more than this many.
pub const GROUP_ABOVE: usize = 50;

/// Passes of the ordering, each one down the ranks and one back up.
const SWEEPS: usize = 4;

/// The drawing of a task graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Each task's rank (column), by task index.
    pub rank: Vec<u32>,
    /// Each task's position in its rank, from 0, by task index.
    pub order: Vec<u32>,
    /// The group each task belongs to (an index into `groups`), by task index.
    pub group: Vec<Option<u32>>,
    /// Each group's tasks, in order.
    pub groups: Vec<Vec<u32>>,
    /// Dependencies as `[from, to]` task indices: `to` depends on `from`.
    pub edges: Vec<[u32; 2]>,
}

impl Layout {
    /// The layout of `graph`.
    pub fn of(graph: &TaskGraph) -> Self {
        let n = graph.len();
        let deps: Vec<&[usize]> = graph.tasks().iter().map(|t| t.deps.as_slice()).collect();
        let parent: Vec<Option<usize>> = graph.tasks().iter().map(|t| t.parent).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in 0..n {
            for &d in deps[i] {
                dependents[d].push(i);
            }
            if let Some(p) = parent[i] {
                children[p].push(i);
            }
        }
        let rank = ranks(&deps, &parent, &dependents, &children);
        let (group, groups) = grouping(&deps, &parent, &dependents, &children);
        let order = ordering(&rank, &deps, &parent, &dependents, &children, &group);
        let mut edges = Vec::with_capacity(deps.iter().map(|d| d.len()).sum());
        for (to, ds) in deps.iter().enumerate() {
            for &from in *ds {
                edges.push([from as u32, to as u32]);
            }
        }
        Self {
            rank,
            order,
            group,
            groups,
            edges,
        }
    }
}

/// Longest paths over each task's start and end: a task starts one rank after the ends of
/// its dependencies and after its parent's start; it ends at its start or at its subtasks'
/// last end, whichever is later.
fn ranks(
    deps: &[&[usize]],
    parent: &[Option<usize>],
    dependents: &[Vec<usize>],
    children: &[Vec<usize>],
) -> Vec<u32> {
    let n = deps.len();
    // Node `i` is task i's start, node `n + i` its end.
    let mut waiting: Vec<usize> = (0..n)
        .map(|i| deps[i].len() + usize::from(parent[i].is_some()))
        .chain((0..n).map(|i| 1 + children[i].len()))
        .collect();
    let mut at = vec![0u32; 2 * n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut done = vec![false; 2 * n];
    let mut release = |node: usize, value: u32, at: &mut Vec<u32>, ready: &mut Vec<usize>| {
        at[node] = at[node].max(value);
        waiting[node] -= 1;
        if waiting[node] == 0 {
            ready.push(node);
        }
    };
    while let Some(node) = ready.pop() {
        done[node] = true;
        let v = at[node];
        if node < n {
            release(n + node, v, &mut at, &mut ready);
            for &c in &children[node] {
                release(c, v + 1, &mut at, &mut ready);
            }
        } else {
            let t = node - n;
            for &x in &dependents[t] {
                release(x, v + 1, &mut at, &mut ready);
            }
            if let Some(p) = parent[t] {
                release(n + p, v, &mut at, &mut ready);
            }
        }
    }
    // A graph that validated has no cycle; were there one, its tasks go after the rest.
    if done.iter().any(|d| !d) {
        let last = at.iter().copied().max().unwrap_or(0);
        for i in 0..n {
            if !done[i] {
                at[i] = last + 1;
            }
        }
    }
    at.truncate(n);
    at
}

/// Groups of more than [`GROUP_ABOVE`] tasks with the same parent, dependencies and
/// dependents, none of them decomposed (a sub-plan is drawn under its task).
fn grouping(
    deps: &[&[usize]],
    parent: &[Option<usize>],
    dependents: &[Vec<usize>],
    children: &[Vec<usize>],
) -> (Vec<Option<u32>>, Vec<Vec<u32>>) {
    type Key = (Option<usize>, Vec<usize>, Vec<usize>);
    let n = deps.len();
    let mut alike: HashMap<Key, Vec<u32>> = HashMap::new();
    for i in 0..n {
        if !children[i].is_empty() {
            continue;
        }
        let mut d = deps[i].to_vec();
        d.sort_unstable();
        let mut s = dependents[i].clone();
        s.sort_unstable();
        alike.entry((parent[i], d, s)).or_default().push(i as u32);
    }
    let mut groups: Vec<Vec<u32>> = alike
        .into_values()
        .filter(|members| members.len() > GROUP_ABOVE)
        .collect();
    groups.sort_unstable_by_key(|m| m[0]);
    let mut group = vec![None; n];
    for (g, members) in groups.iter().enumerate() {
        for &m in members {
            group[m as usize] = Some(g as u32);
        }
    }
    (group, groups)
}

/// Positions within each rank: plan order first, then sweeps that sort each rank by the mean
/// position of the neighbours in the ranks before it (down) or after it (up). A group's
/// tasks stay together.
fn ordering(
    rank: &[u32],
    deps: &[&[usize]],
    parent: &[Option<usize>],
    dependents: &[Vec<usize>],
    children: &[Vec<usize>],
    group: &[Option<u32>],
) -> Vec<u32> {
    let n = rank.len();
    let ranks = rank.iter().map(|&r| r as usize + 1).max().unwrap_or(0);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); ranks];
    for i in 0..n {
        layers[rank[i] as usize].push(i);
    }
    // Where a task sits in its rank, scaled to 0..1 so ranks of different widths compare.
    let mut pos = vec![0f64; n];
    let place = |layer: &[usize], pos: &mut Vec<f64>| {
        let w = layer.len().max(1) as f64;
        for (k, &i) in layer.iter().enumerate() {
            pos[i] = k as f64 / w;
        }
    };
    for layer in &layers {
        place(layer, &mut pos);
    }
    // Members of a group sort as one, after the single tasks they tie with.
    let unit = |i: usize| match group[i] {
        Some(g) => (1, g as usize),
        None => (0, i),
    };
    let mut key = vec![0f64; n];
    for _ in 0..SWEEPS {
        for down in [true, false] {
            let seq: Vec<usize> = if down {
                (1..ranks).collect()
            } else {
                (0..ranks.saturating_sub(1)).rev().collect()
            };
            for r in seq {
                for &i in &layers[r] {
                    let (sum, count) = if down {
                        let mut s = 0.0;
                        let mut c = 0usize;
                        for &d in deps[i] {
                            s += pos[d];
                            c += 1;
                        }
                        if let Some(p) = parent[i] {
                            s += pos[p];
                            c += 1;
                        }
                        (s, c)
                    } else {
                        let mut s = 0.0;
                        let mut c = 0usize;
                        for &x in dependents[i].iter().chain(&children[i]) {
                            s += pos[x];
                            c += 1;
                        }
                        (s, c)
                    };
                    key[i] = if count == 0 {
                        pos[i]
                    } else {
                        sum / count as f64
                    };
                }
                let layer = &mut layers[r];
                layer.sort_by(|&a, &b| {
                    key[a]
                        .total_cmp(&key[b])
                        .then_with(|| unit(a).cmp(&unit(b)))
                        .then_with(|| a.cmp(&b))
                });
                place(layer, &mut pos);
            }
        }
    }
    let mut order = vec![0u32; n];
    for layer in &layers {
        for (k, &i) in layer.iter().enumerate() {
            order[i] = k as u32;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::testing::graph;

    fn fan(width: usize) -> String {
        let mut s = String::from("name: f\ntasks:\n  - { id: root, tool: test:echo }\n");
        for i in 0..width {
            s.push_str(&format!(
                "  - {{ id: w{i}, tool: test:echo, depends_on: [root] }}\n"
            ));
        }
        let all: Vec<String> = (0..width).map(|i| format!("w{i}")).collect();
        s.push_str(&format!(
            "  - {{ id: join, tool: test:echo, depends_on: [{}] }}\n",
            all.join(", ")
        ));
        s
    }

    #[test]
    fn ranks_follow_the_longest_path_and_edges_name_dependencies() {
        // a → b → d, a → c → d, and e after a only: d is two ranks after a, not one.
        let g = graph(
            "name: r\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a] }\n  - { id: c, tool: test:echo, depends_on: [a] }\n  - { id: d, tool: test:echo, depends_on: [b, c, a] }\n  - { id: e, tool: test:echo, depends_on: [a] }\n",
        );
        let l = Layout::of(&g);
        assert_eq!(l.rank, [0, 1, 1, 2, 1]);
        let mut edges = l.edges.clone();
        edges.sort_unstable();
        assert_eq!(edges, [[0, 1], [0, 2], [0, 3], [0, 4], [1, 3], [2, 3]]);
        // Orders are a permutation of each rank's positions.
        let mut rank1: Vec<u32> = [1, 2, 4].iter().map(|&i| l.order[i]).collect();
        rank1.sort_unstable();
        assert_eq!(rank1, [0, 1, 2]);
        assert!(l.groups.is_empty());
    }

    #[test]
    fn more_than_fifty_alike_siblings_are_one_group_and_fifty_are_not() {
        let l = Layout::of(&graph(&fan(GROUP_ABOVE)));
        assert!(l.groups.is_empty());
        let g = graph(&fan(GROUP_ABOVE + 1));
        let l = Layout::of(&g);
        assert_eq!(l.groups.len(), 1);
        assert_eq!(l.groups[0].len(), GROUP_ABOVE + 1);
        assert_eq!(l.group[0], None);
        assert_eq!(l.group[GROUP_ABOVE + 2], None);
        assert!((1..=GROUP_ABOVE + 1).all(|i| l.group[i] == Some(0)));
        assert_eq!(l.rank[GROUP_ABOVE + 2], 2);
    }

    #[test]
    fn a_group_stays_together_in_its_rank() {
        // Two different fans in one rank: each group's positions are contiguous.
        let mut s = String::from(
            "name: two\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo }\n",
        );
        for i in 0..60 {
            let dep = if i % 2 == 0 { "a" } else { "b" };
            s.push_str(&format!(
                "  - {{ id: t{i}, tool: test:echo, depends_on: [{dep}] }}\n"
            ));
        }
        let l = Layout::of(&graph(&s));
        assert_eq!(l.groups.len(), 0, "30 alike are not a group");
        for i in 60..120 {
            let dep = if i % 2 == 0 { "a" } else { "b" };
            s.push_str(&format!(
                "  - {{ id: t{i}, tool: test:echo, depends_on: [{dep}] }}\n"
            ));
        }
        let l = Layout::of(&graph(&s));
        assert_eq!(l.groups.len(), 2);
        for members in &l.groups {
            let mut at: Vec<u32> = members.iter().map(|&m| l.order[m as usize]).collect();
            at.sort_unstable();
            assert_eq!(at.last().unwrap() - at[0] + 1, at.len() as u32, "{at:?}");
        }
    }

    #[test]
    fn ordering_uncrosses_a_crossed_pair() {
        // x1 depends on b, x2 on a: in plan order the edges cross; after the sweeps they don't.
        let g = graph(
            "name: x\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo }\n  - { id: x1, tool: test:echo, depends_on: [b] }\n  - { id: x2, tool: test:echo, depends_on: [a] }\n",
        );
        let l = Layout::of(&g);
        let above = |u: usize, v: usize| l.order[u] < l.order[v];
        assert_eq!(above(0, 1), above(3, 2), "{:?}", l.order);
    }

    #[test]
    fn a_sub_plan_goes_after_its_task_starts_and_before_its_dependents() {
        // p decomposes into p.s1 → p.s2; z depends on p: z comes after the whole sub-plan.
        let mut g = graph(
            "name: h\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: p, tool: test:echo, depends_on: [a] }\n  - { id: z, tool: test:echo, depends_on: [p] }\n",
        );
        let spec = |id: &str, deps: &[&str]| crate::domain::plan::TaskSpec {
            id: id.to_string(),
            tool: "test:echo".into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..serde_json::from_value(serde_json::json!({"id": id})).unwrap()
        };
        g.append(1, vec![spec("p.s1", &[]), spec("p.s2", &["p.s1"])], &[])
            .unwrap();
        let l = Layout::of(&g);
        // a 0, p 1, p.s1 2, p.s2 3, z 4.
        assert_eq!(l.rank, [0, 1, 4, 2, 3]);
        assert_eq!(l.edges.len(), 3);
    }

    #[test]
    fn ten_thousand_tasks_lay_out_flat() {
        let l = Layout::of(&graph(&fan(10_000)));
        assert_eq!(l.rank.len(), 10_002);
        assert_eq!(l.groups.len(), 1);
        assert_eq!(l.edges.len(), 20_000);
    }
}
