//! A run's task states, pure: each task's status and attempt, the readiness counters (how
//! many of its dependencies have not succeeded), what a success makes ready, whether a
//! failure is retried, which dependents a failure skips, and how the run ends. It owns the
//! run's graph, which grows as tasks decompose, and each decomposed task's group of subtasks
//! (how many are open, which did not succeed), noting the groups whose subtasks ended so the
//! coordinator settles them. No actors, no I/O, no clock: the coordinator passes the time in
//! and turns what changed into events and rows.

use crate::domain::graph::TaskGraph;
use crate::domain::plan::RunIf;
use crate::domain::reference::Lookup;
use crate::domain::{
    CheckpointId, FailureKind, IllegalTransition, RunStatus, TaskKey, TaskStatus, WaitId,
};
use crate::store::TaskRow;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One task of the run as the coordinator knows it.
#[derive(Debug, Default)]
pub(crate) struct Task {
    pub status: TaskStatus,
    pub attempt: u32,
    pub agent: Option<String>,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Cancels the attempt in flight.
    pub cancel: Option<CancellationToken>,
    /// When it last became ready (latency is measured from here).
    pub ready_at: Option<Instant>,
    /// True while an attempt is with the supervisor or an agent.
    pub dispatched: bool,
    /// The last attempt's tool run, once it has reported: (wall time, when it ended), ms.
    pub attempt_ms: Option<(i64, i64)>,
    /// The checkpoint its result was restored from.
    pub restored_from: Option<CheckpointId>,
    /// The wait it is held by, while waiting for a decision.
    pub wait: Option<WaitId>,
}

/// What the end of a task changes downstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Unblocked {
    /// Tasks ready now.
    pub ready: Vec<usize>,
    /// Tasks skipped, with why, in the order they were reached.
    pub skipped: Vec<(usize, String)>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Another attempt, after this long.
    Retry { backoff_ms: u64 },
    /// The task fails.
    Fail,
}

/// The subtasks of a decomposed task.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Its subtasks (of every round).
    pub children: Vec<usize>,
    /// Subtasks not in a terminal status.
    pub open: usize,
    /// Subtasks that ended without success, in the order they ended.
    pub failed: Vec<usize>,
    /// Queued for the coordinator to settle.
    queued: bool,
    /// A model merges its results or replans it now.
    pub busy: bool,
}

/// The tasks of one run.
pub(crate) struct RunState {
    graph: Arc<TaskGraph>,
    /// Decomposed tasks' groups, by task.
    groups: HashMap<usize, Group>,
    /// Decomposed tasks one of whose subtasks ended since the coordinator last looked.
    settle: Vec<usize>,
    tasks: Vec<Task>,
    /// Per task, its dependencies that have not succeeded (for a `run_if: failed` task:
    /// that have not ended).
    remaining: Vec<u32>,
    /// `run_if: failed` tasks one of whose dependencies failed.
    dep_failed: HashSet<usize>,
    /// Tasks not in a terminal status.
    open: usize,
    /// Succeeded tasks (kept as they change: counting them on each success would make a
    /// run's cost per task grow with its size).
    succeeded: usize,
    first_failure: Option<String>,
}

impl RunState {
    /// The run's tasks: from their stored rows when it ran before (what was in flight then is
    /// ready to run again, with the next attempt number), else all pending.
    pub fn new(graph: Arc<TaskGraph>, rows: &[TaskRow]) -> Self {
        let rows: HashMap<&str, &TaskRow> = rows.iter().map(|r| (r.task_id.as_str(), r)).collect();
        let tasks: Vec<Task> = graph
            .tasks()
            .iter()
            .map(|t| match rows.get(t.key.as_str()) {
                Some(r) => Task {
                    // A task waiting for a decision keeps waiting (its wait row says for what).
                    status: match r.status {
                        TaskStatus::Running => TaskStatus::Ready,
                        s => s,
                    },
                    attempt: r.attempt as u32,
                    agent: r.agent.clone(),
                    outputs: r.outputs.clone(),
                    error: r.error.clone(),
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    restored_from: r.restored_from.clone(),
                    ..Task::default()
                },
                None => Task::default(),
            })
            .collect();
        let mut dep_failed = HashSet::new();
        let remaining = graph
            .tasks()
            .iter()
            .map(|t| match t.run_if {
                RunIf::Succeeded => t
                    .deps
                    .iter()
                    .filter(|&&d| tasks[d].status != TaskStatus::Succeeded)
                    .count() as u32,
                RunIf::Failed => {
                    if t.deps
                        .iter()
                        .any(|&d| tasks[d].status == TaskStatus::Failed)
                    {
                        dep_failed.insert(t.index);
                    }
                    t.deps
                        .iter()
                        .filter(|&&d| !tasks[d].status.is_terminal())
                        .count() as u32
                }
            })
            .collect();
        // How the run ends still counts a failure from before a restart.
        let first_failure = graph
            .tasks()
            .iter()
            .filter(|t| t.parent.is_none() && tasks[t.index].status == TaskStatus::Failed)
            .min_by_key(|t| (tasks[t.index].finished_at, t.index))
            .map(|t| {
                format!(
                    "task `{}` failed: {}",
                    t.key,
                    tasks[t.index].error.as_deref().unwrap_or_default()
                )
            });
        let open = tasks.iter().filter(|t| !t.status.is_terminal()).count();
        let succeeded = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .count();
        let mut groups: HashMap<usize, Group> = HashMap::new();
        for t in graph.tasks() {
            if graph.is_replaced(t.index) {
                continue;
            }
            if let Some(p) = t.parent {
                let g = groups.entry(p).or_default();
                g.children.push(t.index);
                match tasks[t.index].status {
                    s if !s.is_terminal() => g.open += 1,
                    TaskStatus::Succeeded => {}
                    _ => g.failed.push(t.index),
                }
            }
        }
        // A decomposed task keeps running: its sub-plan is committed, never asked again (a
        // run restored from a checkpoint starts with the sub-plans it had).
        let mut tasks = tasks;
        for &p in groups.keys() {
            match rows.get(graph.task(p).key.as_str()).map(|r| r.status) {
                Some(TaskStatus::Running) | None => tasks[p].status = TaskStatus::Running,
                _ => {}
            }
        }
        // A group may have ended just before the process stopped: each is looked at once.
        let mut settle: Vec<usize> = groups.keys().copied().collect();
        settle.sort_unstable();
        for p in &settle {
            if let Some(g) = groups.get_mut(p) {
                g.queued = true;
            }
        }
        Self {
            graph,
            groups,
            settle,
            tasks,
            remaining,
            dep_failed,
            open,
            succeeded,
            first_failure,
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The run's graph as it stands.
    pub fn graph(&self) -> &Arc<TaskGraph> {
        &self.graph
    }

    /// Subtasks (full ids, every dependency in `depends_on`) join the graph under task
    /// `parent`, pending; returns their indices and those with no open dependency (to make
    /// ready).
    ///
    /// # Errors
    /// A dependency that names no task; nothing changes.
    pub fn append(
        &mut self,
        parent: usize,
        subtasks: Vec<crate::domain::plan::TaskSpec>,
        replaced: &[String],
    ) -> Result<(std::ops::Range<usize>, Vec<usize>), String> {
        let n = subtasks.len();
        let first = Arc::make_mut(&mut self.graph).append(parent, subtasks, replaced)?;
        let mut ready = Vec::new();
        let graph = self.graph.clone();
        let group = self.groups.entry(parent).or_default();
        group.children.retain(|&c| !graph.is_replaced(c));
        group.failed.retain(|&c| !graph.is_replaced(c));
        for i in first..first + n {
            self.tasks.push(Task::default());
            let left = self
                .graph
                .task(i)
                .deps
                .iter()
                .filter(|&&d| self.tasks[d].status != TaskStatus::Succeeded)
                .count() as u32;
            self.remaining.push(left);
            if left == 0 {
                ready.push(i);
            }
            group.children.push(i);
        }
        group.open += n;
        self.open += n;
        Ok((first..first + n, ready))
    }

    /// The group of a decomposed task.
    pub fn group(&self, i: usize) -> Option<&Group> {
        self.groups.get(&i)
    }

    /// The decomposed tasks, in index order.
    pub fn decomposed(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.groups.keys().copied().collect();
        out.sort_unstable();
        out
    }

    /// Whether task `i` has decomposed (its sub-plan is in the graph).
    pub fn is_decomposed(&self, i: usize) -> bool {
        self.groups.contains_key(&i)
    }

    /// The next decomposed task one of whose subtasks ended, to settle.
    pub fn next_to_settle(&mut self) -> Option<usize> {
        let p = self.settle.pop()?;
        if let Some(g) = self.groups.get_mut(&p) {
            g.queued = false;
        }
        Some(p)
    }

    /// Marks decomposed task `i` as having a model merge or replan it (or not any more).
    pub fn set_busy(&mut self, i: usize, busy: bool) {
        if let Some(g) = self.groups.get_mut(&i) {
            g.busy = busy;
        }
    }

    /// Queues decomposed task `i` to be settled again (a merge or replan ended).
    pub fn resettle(&mut self, i: usize) {
        if let Some(g) = self.groups.get_mut(&i) {
            if !g.queued {
                g.queued = true;
                self.settle.push(i);
            }
        }
    }

    /// Whether some decomposed task waits to be settled.
    pub fn has_unsettled(&self) -> bool {
        !self.settle.is_empty()
    }

    /// Task `i`.
    pub fn task(&self, i: usize) -> &Task {
        &self.tasks[i]
    }

    /// Task `i`, to record what the coordinator learns (agent, cancel token, wait).
    pub fn task_mut(&mut self, i: usize) -> &mut Task {
        &mut self.tasks[i]
    }

    /// Every task, in plan order.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Task `i`'s id.
    pub fn key(&self, i: usize) -> &TaskKey {
        &self.graph.task(i).key
    }

    /// Tasks not yet in a terminal status.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Succeeded tasks.
    pub fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// Whether any task waits for a decision.
    pub fn any_waiting(&self) -> bool {
        self.tasks.iter().any(|t| t.status == TaskStatus::Waiting)
    }

    /// Moves task `i` to `to`. A task that ends gets its finish time and loses its cancel
    /// token; the open and succeeded counts follow.
    ///
    /// # Errors
    /// When the task's status cannot move to `to`; nothing changes.
    pub fn set_status(
        &mut self,
        i: usize,
        to: TaskStatus,
        now: i64,
    ) -> Result<(), IllegalTransition> {
        let t = &mut self.tasks[i];
        let s = t.status.transition(to)?;
        if s == TaskStatus::Succeeded && t.status != TaskStatus::Succeeded {
            self.succeeded += 1;
        }
        let was_open = !t.status.is_terminal();
        t.status = s;
        if was_open && s.is_terminal() {
            self.open -= 1;
            t.finished_at = Some(now);
            t.cancel = None;
            if let Some(p) = self.graph.task(i).parent {
                if let Some(g) = self.groups.get_mut(&p) {
                    g.open -= 1;
                    if s != TaskStatus::Succeeded {
                        g.failed.push(i);
                    }
                    if !g.queued {
                        g.queued = true;
                        self.settle.push(p);
                    }
                }
            }
        }
        Ok(())
    }

    /// A ready task is handed out: its next attempt number, cancelled through `cancel`.
    pub fn begin_attempt(&mut self, i: usize, cancel: CancellationToken) -> u32 {
        let t = &mut self.tasks[i];
        t.attempt += 1;
        t.cancel = Some(cancel);
        t.dispatched = true;
        t.attempt
    }

    /// An agent started the task's attempt.
    ///
    /// # Errors
    /// When the task is not ready.
    pub fn started(&mut self, i: usize, agent: &str, now: i64) -> Result<(), IllegalTransition> {
        self.set_status(i, TaskStatus::Running, now)?;
        let t = &mut self.tasks[i];
        t.agent = Some(agent.to_string());
        t.started_at.get_or_insert(now);
        Ok(())
    }

    /// Task `i` succeeded with `outputs`: the dependents whose last dependency it was and
    /// that are still pending, in plan order (they are ready now), and the `run_if: failed`
    /// tasks this leaves with nothing to do (skipped, with what that skips in turn).
    ///
    /// # Errors
    /// When the task cannot succeed from its status; nothing changes.
    pub fn succeed(
        &mut self,
        i: usize,
        outputs: Map<String, Value>,
        now: i64,
    ) -> Result<Unblocked, IllegalTransition> {
        self.set_status(i, TaskStatus::Succeeded, now)?;
        let t = &mut self.tasks[i];
        t.outputs = Some(Value::Object(outputs));
        t.error = None;
        t.dispatched = false;
        let mut out = self.ended(i, now);
        out.ready.sort_unstable();
        Ok(out)
    }

    /// Whether a failed attempt of task `i` is retried: its kind must allow it, the run must
    /// still be running, and the task's retry policy must have attempts left.
    /// A decomposed task never tries again: its sub-plan is committed.
    pub fn after_failure(&self, i: usize, kind: FailureKind, running: bool) -> AfterFailure {
        let retry = self.graph.task(i).retry;
        if kind.retryable()
            && running
            && self.tasks[i].attempt <= retry.max
            && !self.is_decomposed(i)
        {
            AfterFailure::Retry {
                backoff_ms: retry.backoff_ms,
            }
        } else {
            AfterFailure::Fail
        }
    }

    /// Task `i` will be attempted again: ready, remembering why the last attempt failed.
    pub fn retry(&mut self, i: usize, error: &str, now: i64) {
        let t = &mut self.tasks[i];
        t.dispatched = false;
        if t.status == TaskStatus::Running {
            // Running → ready is always legal.
            let _ = self.set_status(i, TaskStatus::Ready, now);
        }
        self.tasks[i].error = Some(error.to_string());
    }

    /// Task `i` failed with `error`: every pending task downstream of it is skipped, except
    /// `run_if: failed` tasks, which become ready once all their dependencies have ended.
    /// Returns the skipped tasks with their reasons, in the order they were reached, and
    /// the ready ones.
    ///
    /// # Errors
    /// When the task cannot fail from its status; nothing changes.
    pub fn fail(
        &mut self,
        i: usize,
        error: &str,
        now: i64,
    ) -> Result<Unblocked, IllegalTransition> {
        self.tasks[i].dispatched = false;
        self.set_status(i, TaskStatus::Failed, now)?;
        self.tasks[i].error = Some(error.to_string());
        // A subtask's failure is its parent's to handle.
        if self.first_failure.is_none() && self.graph.task(i).parent.is_none() {
            self.first_failure = Some(format!("task `{}` failed: {error}", self.key(i)));
        }
        Ok(self.ended(i, now))
    }

    /// What the end of task `ended` (succeeded, failed or skipped) does to the pending tasks
    /// downstream: a task waiting for every dependency's success becomes ready on the last
    /// one, or is skipped when one did not succeed; a `run_if: failed` task becomes ready
    /// once every dependency has ended and one failed, or is skipped when none failed.
    /// Skips go on downstream.
    fn ended(&mut self, ended: usize, now: i64) -> Unblocked {
        let graph = self.graph.clone();
        let mut out = Unblocked::default();
        let mut stack = vec![ended];
        while let Some(i) = stack.pop() {
            let status = self.tasks[i].status;
            for d in graph.dependents(i) {
                let skip = match graph.task(d).run_if {
                    RunIf::Succeeded if status == TaskStatus::Succeeded => {
                        self.remaining[d] = self.remaining[d].saturating_sub(1);
                        if self.remaining[d] == 0 && self.tasks[d].status == TaskStatus::Pending {
                            out.ready.push(d);
                        }
                        None
                    }
                    RunIf::Succeeded => {
                        let verb = if status == TaskStatus::Failed {
                            "failed"
                        } else {
                            "was skipped"
                        };
                        Some(format!("dependency `{}` {verb}", self.key(i)))
                    }
                    RunIf::Failed => {
                        self.remaining[d] = self.remaining[d].saturating_sub(1);
                        if status == TaskStatus::Failed {
                            self.dep_failed.insert(d);
                        }
                        match self.remaining[d] {
                            0 if self.dep_failed.contains(&d) => {
                                if self.tasks[d].status == TaskStatus::Pending {
                                    out.ready.push(d);
                                }
                                None
                            }
                            0 => Some("no dependency failed".to_string()),
                            _ => None,
                        }
                    }
                };
                if let Some(reason) = skip {
                    if self.tasks[d].status == TaskStatus::Pending
                        && self.set_status(d, TaskStatus::Skipped, now).is_ok()
                    {
                        self.tasks[d].error = Some(reason.clone());
                        out.skipped.push((d, reason));
                        stack.push(d);
                    }
                }
            }
        }
        out
    }

    /// Cancels task `i` (its attempt in flight is told to stop). False when it had already
    /// ended.
    pub fn cancel(&mut self, i: usize, reason: &str, now: i64) -> bool {
        if let Some(c) = &self.tasks[i].cancel {
            c.cancel();
        }
        if self.set_status(i, TaskStatus::Cancelled, now).is_err() {
            return false;
        }
        let t = &mut self.tasks[i];
        t.dispatched = false;
        t.error = Some(reason.to_string());
        true
    }

    /// Task `i`'s result waits for a person's decision on `wait`; returns its attempt.
    ///
    /// # Errors
    /// When the task cannot wait from its status; nothing changes.
    pub fn hold(
        &mut self,
        i: usize,
        outputs: Map<String, Value>,
        wait: WaitId,
        now: i64,
    ) -> Result<u32, IllegalTransition> {
        self.set_status(i, TaskStatus::Waiting, now)?;
        let t = &mut self.tasks[i];
        t.outputs = Some(Value::Object(outputs));
        t.dispatched = false;
        t.wait = Some(wait);
        Ok(t.attempt)
    }

    /// A run that starts (or resumes): tasks that were ready, running or retrying when the
    /// last process stopped are ready again (`again`, their rows are rewritten); pending
    /// tasks without open dependencies are to be made ready (`fresh`).
    pub fn restart(&mut self) -> (Vec<usize>, Vec<usize>) {
        let mut again = Vec::new();
        let mut fresh = Vec::new();
        for (i, t) in self.tasks.iter_mut().enumerate() {
            if t.status == TaskStatus::Running && self.groups.contains_key(&i) {
                // Decomposed: its subtasks carry on, and it ends when they have.
                continue;
            }
            if matches!(t.status, TaskStatus::Ready | TaskStatus::Running) {
                t.status = TaskStatus::Ready;
                t.ready_at = Some(Instant::now());
                again.push(i);
            } else if t.status == TaskStatus::Pending
                && self.remaining[i] == 0
                && (self.graph.task(i).run_if == RunIf::Succeeded || self.dep_failed.contains(&i))
            {
                fresh.push(i);
            }
        }
        (again, fresh)
    }

    /// How the run ends once no task is open: as `stopping` says when it was stopped, else
    /// failed with its first failure, else succeeded.
    pub fn outcome(&self, stopping: Option<(RunStatus, String)>) -> (RunStatus, Option<String>) {
        match stopping {
            Some((status, reason)) => (status, Some(reason)),
            None => match &self.first_failure {
                Some(f) => (RunStatus::Failed, Some(f.clone())),
                None => (RunStatus::Succeeded, None),
            },
        }
    }

    /// Tasks by status.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<&'static str, usize> = BTreeMap::new();
        for t in &self.tasks {
            *m.entry(t.status.as_str()).or_default() += 1;
        }
        m.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
    }

    /// What the run's status is while it executes: `waiting` when a task waits for a
    /// decision and nothing else is ready or running (nor held back, `held`), else
    /// `running`; with the waiting tasks' ids.
    pub fn executing_status(&self, held: bool) -> (RunStatus, Vec<String>) {
        let waiting: Vec<String> = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TaskStatus::Waiting)
            .map(|(i, _)| self.key(i).to_string())
            .collect();
        let busy = held
            || self
                .tasks
                .iter()
                .any(|t| matches!(t.status, TaskStatus::Ready | TaskStatus::Running));
        let status = if !waiting.is_empty() && !busy {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
        (status, waiting)
    }

    /// What `${inputs.*}` and `${tasks.*.outputs.*}` resolve to now.
    pub fn refs<'a>(&'a self, inputs: &'a Map<String, Value>) -> Refs<'a> {
        Refs {
            inputs,
            state: self,
        }
    }
}

/// References as they resolve now: plan inputs and the outputs of succeeded tasks.
pub(crate) struct Refs<'a> {
    inputs: &'a Map<String, Value>,
    state: &'a RunState,
}

impl Lookup for Refs<'_> {
    fn input(&self, name: &str) -> Option<&Value> {
        self.inputs.get(name)
    }
    fn outputs(&self, task: &str) -> Option<&Value> {
        let i = self.state.graph.index_of(task)?;
        let t = &self.state.tasks[i];
        (t.status == TaskStatus::Succeeded)
            .then_some(t.outputs.as_ref())
            .flatten()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
