//! The `TaskGraph`: a plan's tasks as a petgraph `DiGraph` (edges from a dependency to its
//! dependent), built once the plan is checked (`plan::validate`), and its cycles. A run's
//! graph grows as tasks decompose: subtasks are appended after every task there is, with
//! edges only among siblings (their other dependencies have succeeded before they exist).

use crate::domain::ids::TaskKey;
use crate::domain::plan::{
    Complexity, Decompose, GateSpec, Plan, Priority, RetryPolicy, RunIf, TaskSpec,
};
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
    /// Deadline of one attempt (of the whole sub-plan, for a decomposed task).
    pub timeout: Option<Duration>,
    /// The task it is a subtask of.
    pub parent: Option<usize>,
    /// 0 for a task of the plan, its parent's depth + 1 for a subtask.
    pub depth: u32,
    /// When it runs.
    pub run_if: RunIf,
}

/// The validated DAG of a plan, with the subtasks of its decompositions so far.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    plan: std::sync::Arc<Plan>,
    graph: DiGraph<usize, ()>,
    tasks: Vec<Task>,
    by_key: HashMap<TaskKey, usize>,
    /// Specs of the subtasks (ids `PARENT.CHILD`, references rewritten to full ids), from
    /// index `plan.tasks.len()` on.
    added: Vec<TaskSpec>,
    /// Rounds of each decomposed task's sub-plan (1, then one more per replan).
    rounds: HashMap<usize, u32>,
    /// Subtasks a replan replaced (they keep their rows; their parent no longer counts them).
    replaced: HashSet<usize>,
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
            added: Vec::new(),
            rounds: HashMap::new(),
            replaced: HashSet::new(),
        })
    }

    /// Appends a round of the subtasks of task `parent` (ids `PARENT.CHILD`, `depends_on`
    /// listing every dependency by full id: earlier tasks or siblings), at the next indices;
    /// a replan's round replaces earlier subtasks (`replaced`, by full id). Returns the first
    /// new index.
    ///
    /// # Errors
    /// A dependency or a replaced subtask that names no task; nothing changes.
    pub fn append(
        &mut self,
        parent: usize,
        subtasks: Vec<TaskSpec>,
        replaced: &[String],
    ) -> Result<usize, String> {
        let first = self.tasks.len();
        let mut gone = Vec::with_capacity(replaced.len());
        for r in replaced {
            match self.index_of(r) {
                Some(j) if self.tasks[j].parent == Some(parent) => gone.push(j),
                _ => {
                    return Err(format!(
                        "replaced subtask `{r}` is not a subtask of the task"
                    ))
                }
            }
        }
        let depth = self.tasks[parent].depth + 1;
        let local: HashMap<&str, usize> = subtasks
            .iter()
            .enumerate()
            .map(|(n, s)| (s.id.as_str(), first + n))
            .collect();
        let mut tasks = Vec::with_capacity(subtasks.len());
        for (n, spec) in subtasks.iter().enumerate() {
            let mut deps = Vec::with_capacity(spec.depends_on.len());
            for d in &spec.depends_on {
                match local.get(d.as_str()).copied().or_else(|| self.index_of(d)) {
                    Some(j) => deps.push(j),
                    None => {
                        return Err(format!(
                            "subtask `{}` depends on unknown task `{d}`",
                            spec.id
                        ))
                    }
                }
            }
            tasks.push(Task {
                index: first + n,
                key: TaskKey::from_trusted(spec.id.clone()),
                tool: spec.tool_name().to_string(),
                deps,
                capabilities: spec.capabilities.clone(),
                complexity: spec.complexity,
                priority: spec.priority,
                gates: spec.gates.clone(),
                retry: spec.retry,
                timeout: spec
                    .timeout_s
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64),
                parent: Some(parent),
                depth,
                run_if: spec.run_if,
            });
        }
        for t in tasks {
            self.graph.add_node(t.index);
            self.by_key.insert(t.key.clone(), t.index);
            self.tasks.push(t);
        }
        for t in &self.tasks[first..] {
            for &d in &t.deps {
                self.graph
                    .add_edge(NodeIndex::new(d), NodeIndex::new(t.index), ());
            }
        }
        self.added.extend(subtasks);
        self.replaced.extend(gone);
        *self.rounds.entry(parent).or_insert(0) += 1;
        Ok(first)
    }

    /// Rounds of task `index`'s sub-plan so far (0: it has not decomposed).
    pub fn rounds(&self, index: usize) -> u32 {
        self.rounds.get(&index).copied().unwrap_or(0)
    }

    /// Whether a replan replaced subtask `index`.
    pub fn is_replaced(&self, index: usize) -> bool {
        self.replaced.contains(&index)
    }

    /// The spec of the task at `index`: the plan's, or the subtask's as decomposed.
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this graph.
    pub fn spec(&self, index: usize) -> &TaskSpec {
        let n = self.plan.tasks.len();
        if index < n {
            &self.plan.tasks[index]
        } else {
            &self.added[index - n]
        }
    }

    /// How the task at `index` decomposes, when it does.
    pub fn decompose(&self, index: usize) -> Option<&Decompose> {
        self.spec(index).decompose.as_deref()
    }

    /// The task at `index` and its ancestors, nearest first.
    pub fn ancestry(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(index), |&i| self.tasks[i].parent)
    }

    /// The plan the graph was built from.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
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
        &self.spec(index).inputs
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

/// Every dependency cycle among `tasks` (a list checked apart from any graph), each as task
/// indices.
pub(crate) fn cycles_among(tasks: &[Task]) -> Vec<Vec<usize>> {
    let mut graph = DiGraph::with_capacity(tasks.len(), tasks.len());
    let node_of: HashMap<usize, NodeIndex> = tasks
        .iter()
        .map(|t| (t.index, graph.add_node(t.index)))
        .collect();
    for t in tasks {
        for d in &t.deps {
            if let Some(&from) = node_of.get(d) {
                graph.add_edge(from, node_of[&t.index], ());
            }
        }
    }
    cycles(&graph)
}

/// Every dependency cycle, each as task indices in edge order starting from its first task
/// in plan order (the first task repeated at the end).
pub(crate) fn cycles(graph: &DiGraph<usize, ()>) -> Vec<Vec<usize>> {
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
