//! The `TaskGraph`: a plan's tasks as a petgraph `DiGraph` (edges from a dependency to its
//! dependent), built once the plan is checked (`plan::validate`), and its cycles.

use crate::domain::ids::TaskKey;
use crate::domain::plan::{Complexity, GateSpec, Plan, Priority, RetryPolicy};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Position in the plan.
    pub index: usize,
    /// Its id.
    pub key: TaskKey,
    /// The tool.
    pub tool: String,
    /// Indices of the tasks it depends on (declared and by reference).
    pub deps: Vec<usize>,
    /// Required capabilities.
    pub capabilities: Vec<String>,
    /// Complexity.
    pub complexity: Complexity,
    /// Priority.
    pub priority: Priority,
    /// Gates.
    pub gates: Vec<GateSpec>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Deadline of one attempt.
    pub timeout: Option<Duration>,
}

/// The validated DAG of a plan.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    plan: std::sync::Arc<Plan>,
    graph: DiGraph<usize, ()>,
    tasks: Vec<Task>,
    by_key: HashMap<TaskKey, usize>,
}

impl TaskGraph {
    /// The graph of `tasks` (those of `plan` with a valid id; `by_key` their indices), or
    /// every dependency cycle among them, each as task indices.
    pub(crate) fn build(
        plan: Arc<Plan>,
        tasks: Vec<Task>,
        by_key: HashMap<TaskKey, usize>,
    ) -> Result<Self, Vec<Vec<usize>>> {
        let mut graph = DiGraph::with_capacity(tasks.len(), tasks.len());
        let mut node_of: HashMap<usize, NodeIndex> = HashMap::with_capacity(tasks.len());
        for t in &tasks {
            node_of.insert(t.index, graph.add_node(t.index));
        }
        for t in &tasks {
            for d in &t.deps {
                if let Some(&from) = node_of.get(d) {
                    graph.add_edge(from, node_of[&t.index], ());
                }
            }
        }
        let found = cycles(&graph);
        if !found.is_empty() {
            return Err(found);
        }
        Ok(Self {
            plan,
            graph,
            tasks,
            by_key,
        })
    }

    /// The tasks in plan order.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task at `index`.
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this graph.
    pub fn task(&self, index: usize) -> &Task {
        &self.tasks[index]
    }

    /// The inputs of the task at `index` as written (references are resolved just before
    /// each attempt).
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this graph.
    pub fn inputs(&self, index: usize) -> &Map<String, Value> {
        &self.plan.tasks[index].inputs
    }

    /// The index of a task id.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the graph has no tasks (never true for a validated plan).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tasks that depend directly on `index`.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(index), Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// Number of direct dependencies of each task, by index: the starting in-degree counters
    /// from which readiness is tracked.
    pub fn in_degrees(&self) -> Vec<u32> {
        self.tasks.iter().map(|t| t.deps.len() as u32).collect()
    }
}

/// Every dependency cycle, each as task indices in edge order starting from its first task
/// in plan order (the first task repeated at the end).
fn cycles(graph: &DiGraph<usize, ()>) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for scc in petgraph::algo::tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc
            .iter()
            .min()
            .expect("a strongly connected component is never empty");
        // Walk to the smallest unvisited successor inside the component until back at start.
        let mut path = vec![start];
        let mut seen: HashSet<NodeIndex> = HashSet::from([start]);
        let mut cur = start;
        loop {
            let mut next: Vec<NodeIndex> = graph
                .neighbors_directed(cur, Direction::Outgoing)
                .filter(|n| members.contains(n))
                .collect();
            next.sort();
            if path.len() > 1 && next.contains(&start) && seen.len() == members.len() {
                break;
            }
            match next.into_iter().find(|n| !seen.contains(n)) {
                Some(n) => {
                    seen.insert(n);
                    path.push(n);
                    cur = n;
                }
                None => break,
            }
        }
        let mut cycle: Vec<usize> = if seen.len() == members.len() {
            path.iter().map(|n| graph[*n]).collect()
        } else {
            let mut all: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            all.sort();
            all
        };
        cycle.push(graph[start]);
        out.push(cycle);
    }
    out.sort();
    out
}
