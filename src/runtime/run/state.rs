//! A run's task states, pure: each task's status and attempt, the readiness counters (how
//! many of its dependencies have not succeeded), what a success makes ready, whether a
//! failure is retried, which dependents a failure skips, and how the run ends. No actors, no
//! I/O, no clock: the coordinator passes the time in and turns what changed into events and
//! rows.

use crate::domain::graph::TaskGraph;
use crate::domain::reference::Lookup;
use crate::domain::{
    CheckpointId, FailureKind, IllegalTransition, RunStatus, TaskKey, TaskStatus, WaitId,
};
use crate::store::TaskRow;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
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
    /// Wall time of the last attempt's tool run, once it has reported.
    pub attempt_ms: Option<i64>,
    /// The checkpoint its result was restored from.
    pub restored_from: Option<CheckpointId>,
    /// The wait it is held by, while waiting for a decision.
    pub wait: Option<WaitId>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Another attempt, after this long.
    Retry { backoff_ms: u64 },
    /// The task fails.
    Fail,
}

/// The tasks of one run.
pub(crate) struct RunState {
    graph: Arc<TaskGraph>,
    tasks: Vec<Task>,
    /// Per task, its dependencies that have not succeeded.
    remaining: Vec<u32>,
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
        let remaining = graph
            .tasks()
            .iter()
            .map(|t| {
                t.deps
                    .iter()
                    .filter(|&&d| tasks[d].status != TaskStatus::Succeeded)
                    .count() as u32
            })
            .collect();
        let open = tasks.iter().filter(|t| !t.status.is_terminal()).count();
        let succeeded = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .count();
        Self {
            graph,
            tasks,
            remaining,
            open,
            succeeded,
            first_failure: None,
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
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
    /// that are still pending, in plan order (they are ready now).
    ///
    /// # Errors
    /// When the task cannot succeed from its status; nothing changes.
    pub fn succeed(
        &mut self,
        i: usize,
        outputs: Map<String, Value>,
        now: i64,
    ) -> Result<Vec<usize>, IllegalTransition> {
        self.set_status(i, TaskStatus::Succeeded, now)?;
        let t = &mut self.tasks[i];
        t.outputs = Some(Value::Object(outputs));
        t.error = None;
        t.dispatched = false;
        let graph = self.graph.clone();
        let mut ready = Vec::new();
        for d in graph.dependents(i) {
            self.remaining[d] = self.remaining[d].saturating_sub(1);
            if self.remaining[d] == 0 && self.tasks[d].status == TaskStatus::Pending {
                ready.push(d);
            }
        }
        ready.sort_unstable();
        Ok(ready)
    }

    /// Whether a failed attempt of task `i` is retried: its kind must allow it, the run must
    /// still be running, and the task's retry policy must have attempts left.
    pub fn after_failure(&self, i: usize, kind: FailureKind, running: bool) -> AfterFailure {
        let retry = self.graph.task(i).retry;
        if kind.retryable() && running && self.tasks[i].attempt <= retry.max {
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

    /// Task `i` failed with `error`: every pending task downstream of it is skipped. Returns
    /// the skipped tasks with their reasons, in the order they were reached.
    ///
    /// # Errors
    /// When the task cannot fail from its status; nothing changes.
    pub fn fail(
        &mut self,
        i: usize,
        error: &str,
        now: i64,
    ) -> Result<Vec<(usize, String)>, IllegalTransition> {
        self.tasks[i].dispatched = false;
        self.set_status(i, TaskStatus::Failed, now)?;
        self.tasks[i].error = Some(error.to_string());
        if self.first_failure.is_none() {
            self.first_failure = Some(format!("task `{}` failed: {error}", self.key(i)));
        }
        Ok(self.skip_dependents(i, now))
    }

    fn skip_dependents(&mut self, failed: usize, now: i64) -> Vec<(usize, String)> {
        let graph = self.graph.clone();
        let mut skipped = Vec::new();
        let mut stack = vec![failed];
        while let Some(i) = stack.pop() {
            let verb = if i == failed { "failed" } else { "was skipped" };
            for d in graph.dependents(i) {
                if self.tasks[d].status == TaskStatus::Pending
                    && self.set_status(d, TaskStatus::Skipped, now).is_ok()
                {
                    let reason = format!("dependency `{}` {verb}", self.key(i));
                    self.tasks[d].error = Some(reason.clone());
                    skipped.push((d, reason));
                    stack.push(d);
                }
            }
        }
        skipped
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
            if matches!(t.status, TaskStatus::Ready | TaskStatus::Running) {
                t.status = TaskStatus::Ready;
                t.ready_at = Some(Instant::now());
                again.push(i);
            } else if t.status == TaskStatus::Pending && self.remaining[i] == 0 {
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
mod tests {
    use super::*;
    use crate::domain::plan::{validate, ToolCatalog};
    use crate::domain::plan::{Format, PlanSource};
    use crate::domain::{AgentSpec, Role, RunId};
    use serde_json::json;

    struct Echo;
    impl ToolCatalog for Echo {
        fn check_inputs(&self, _: &str, _: &Value) -> Option<Vec<(String, String)>> {
            Some(vec![])
        }
        fn names(&self) -> Vec<String> {
            vec!["test:echo".into()]
        }
    }

    /// A diamond a → (b, c) → d, then e after d; b retries once.
    fn diamond_graph() -> Arc<TaskGraph> {
        let text = "name: d\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a], retry: { max: 1, backoff_ms: 7 } }\n  - { id: c, tool: test:echo, depends_on: [a] }\n  - { id: d, tool: test:echo, depends_on: [b, c] }\n  - { id: e, tool: test:echo, depends_on: [d] }\n";
        let src = PlanSource::parse(text, Format::Yaml, None).unwrap();
        let agents = [AgentSpec::new("w", Role::Worker)];
        Arc::new(validate(&src, &Map::new(), &Echo, &agents).unwrap().graph)
    }

    fn diamond() -> RunState {
        RunState::new(diamond_graph(), &[])
    }

    fn status(s: &RunState, i: usize) -> TaskStatus {
        s.task(i).status
    }

    /// Makes task `i` ready and starts an attempt of it.
    fn run(s: &mut RunState, i: usize) {
        if status(s, i) == TaskStatus::Pending {
            s.set_status(i, TaskStatus::Ready, 0).unwrap();
        }
        s.begin_attempt(i, CancellationToken::new());
        s.started(i, "w", 1).unwrap();
    }

    fn outputs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_fresh_run_starts_with_the_tasks_that_have_no_dependencies() {
        let mut s = diamond();
        assert_eq!((s.open(), s.succeeded()), (5, 0));
        assert_eq!(s.restart(), (vec![], vec![0]));
    }

    #[test]
    fn a_success_makes_ready_exactly_the_dependents_it_completes() {
        let mut s = diamond();
        run(&mut s, 0);
        assert_eq!(s.succeed(0, outputs(json!({"x": 1})), 2).unwrap(), [1, 2]);
        run(&mut s, 1);
        assert_eq!(s.succeed(1, Map::new(), 3).unwrap(), Vec::<usize>::new());
        run(&mut s, 2);
        assert_eq!(s.succeed(2, Map::new(), 4).unwrap(), [3]);
        assert_eq!((s.open(), s.succeeded()), (2, 3));
        assert_eq!(s.task(0).finished_at, Some(2));
        assert_eq!(s.task(0).attempt, 1);
        assert_eq!(s.task(0).agent.as_deref(), Some("w"));
        assert!(!s.task(0).dispatched && s.task(0).cancel.is_none());
        assert_eq!(
            s.refs(&Map::new()).outputs("a"),
            Some(&json!({"x": 1})),
            "a succeeded task's outputs resolve"
        );
        assert_eq!(s.refs(&Map::new()).outputs("d"), None);
    }

    #[test]
    fn a_task_succeeds_once() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 2).unwrap();
        assert!(s.succeed(0, Map::new(), 3).is_err());
        assert_eq!(s.succeeded(), 1);
        assert!(
            s.succeed(3, Map::new(), 3).is_err(),
            "a pending task cannot succeed"
        );
    }

    #[test]
    fn retryable_failures_are_retried_while_the_policy_has_attempts_left() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 1).unwrap();
        run(&mut s, 1);
        assert_eq!(
            s.after_failure(1, FailureKind::Tool, true),
            AfterFailure::Retry { backoff_ms: 7 }
        );
        assert_eq!(
            s.after_failure(1, FailureKind::Tool, false),
            AfterFailure::Fail,
            "a run that is stopping retries nothing"
        );
        for kind in FailureKind::ALL.into_iter().filter(|k| !k.retryable()) {
            assert_eq!(s.after_failure(1, kind, true), AfterFailure::Fail, "{kind}");
        }
        s.retry(1, "boom", 2);
        assert_eq!(status(&s, 1), TaskStatus::Ready);
        assert_eq!(s.task(1).error.as_deref(), Some("boom"));
        run(&mut s, 1);
        assert_eq!(s.task(1).attempt, 2);
        assert_eq!(
            s.after_failure(1, FailureKind::Tool, true),
            AfterFailure::Fail,
            "one retry allowed, two attempts made"
        );
        run(&mut s, 2);
        assert_eq!(
            s.after_failure(2, FailureKind::Tool, true),
            AfterFailure::Fail,
            "c has no retry policy"
        );
    }

    #[test]
    fn a_failure_skips_everything_downstream_and_is_the_runs_reason() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 1).unwrap();
        run(&mut s, 1);
        let skipped = s.fail(1, "exit 1", 5).unwrap();
        assert_eq!(
            skipped,
            [
                (3, "dependency `b` failed".to_string()),
                (4, "dependency `d` was skipped".to_string())
            ]
        );
        assert_eq!(status(&s, 1), TaskStatus::Failed);
        assert_eq!(s.task(1).finished_at, Some(5));
        assert_eq!(
            s.task(4).error.as_deref(),
            Some("dependency `d` was skipped")
        );
        assert_eq!(s.open(), 1, "c is still open");
        run(&mut s, 2);
        s.succeed(2, Map::new(), 6).unwrap();
        assert_eq!(s.open(), 0);
        assert_eq!(
            s.outcome(None),
            (RunStatus::Failed, Some("task `b` failed: exit 1".into()))
        );
        assert_eq!(
            s.counts(),
            BTreeMap::from(
                [("failed", 1), ("skipped", 2), ("succeeded", 2)].map(|(k, n)| (k.to_string(), n))
            )
        );
    }

    #[test]
    fn the_first_failure_stays_the_reason() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 1).unwrap();
        run(&mut s, 2);
        s.fail(2, "first", 2).unwrap();
        run(&mut s, 1);
        assert_eq!(
            s.fail(1, "second", 3).unwrap(),
            vec![],
            "d was skipped already"
        );
        assert_eq!(s.outcome(None).1.as_deref(), Some("task `c` failed: first"));
    }

    #[test]
    fn a_task_that_cannot_run_fails_from_ready() {
        let mut s = diamond();
        s.set_status(0, TaskStatus::Ready, 0).unwrap();
        assert_eq!(s.fail(0, "bad input", 1).unwrap().len(), 4);
        assert_eq!(s.open(), 0);
    }

    #[test]
    fn cancelling_stops_the_attempt_and_ends_the_task_once() {
        let mut s = diamond();
        run(&mut s, 0);
        let token = s.task(0).cancel.clone().unwrap();
        assert!(s.cancel(0, "stop", 3));
        assert!(token.is_cancelled());
        assert_eq!(status(&s, 0), TaskStatus::Cancelled);
        assert_eq!(s.task(0).error.as_deref(), Some("stop"));
        assert!(
            !s.cancel(0, "again", 4),
            "a cancelled task stays as it ended"
        );
        assert!(s.cancel(3, "stop", 4), "a pending task is cancelled too");
        assert_eq!(s.open(), 3);
        assert_eq!(
            s.outcome(Some((RunStatus::Cancelled, "by user".into()))),
            (RunStatus::Cancelled, Some("by user".into()))
        );
    }

    #[test]
    fn a_held_task_waits_and_the_run_waits_when_nothing_else_can_run() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 1).unwrap();
        run(&mut s, 1);
        assert_eq!(
            s.hold(1, outputs(json!({"v": 2})), "wait-1".into(), 2)
                .unwrap(),
            1
        );
        assert_eq!(status(&s, 1), TaskStatus::Waiting);
        assert!(s.any_waiting());
        assert_eq!(s.task(1).wait.as_deref(), Some("wait-1"));
        s.set_status(2, TaskStatus::Ready, 2).unwrap();
        assert_eq!(
            s.executing_status(false).0,
            RunStatus::Running,
            "c is still ready"
        );
        run(&mut s, 2);
        s.succeed(2, Map::new(), 3).unwrap();
        assert_eq!(
            s.executing_status(false),
            (RunStatus::Waiting, vec!["b".to_string()])
        );
        assert_eq!(
            s.executing_status(true).0,
            RunStatus::Running,
            "work held back keeps the run running"
        );
        // Approved: the held outputs become the result.
        assert_eq!(s.succeed(1, outputs(json!({"v": 2})), 4).unwrap(), [3]);
        assert!(!s.any_waiting());
    }

    #[test]
    fn a_waiting_task_can_be_rejected_or_run_again() {
        let mut s = diamond();
        run(&mut s, 0);
        s.succeed(0, Map::new(), 1).unwrap();
        run(&mut s, 1);
        s.hold(1, Map::new(), "w".into(), 2).unwrap();
        assert_eq!(
            s.after_failure(1, FailureKind::Rejected, true),
            AfterFailure::Fail
        );
        run(&mut s, 2);
        s.hold(2, Map::new(), "w2".into(), 2).unwrap();
        s.set_status(2, TaskStatus::Ready, 3).unwrap();
        assert_eq!(status(&s, 2), TaskStatus::Ready);
        assert_eq!(s.fail(1, "rejected by ann", 3).unwrap().len(), 2);
    }

    #[test]
    fn a_resumed_run_picks_up_where_its_rows_left_it() {
        let graph = diamond_graph();
        let row = |task: &str, status: TaskStatus, attempt: i64| TaskRow {
            run_id: RunId::new(),
            task_id: TaskKey::parse(task).unwrap(),
            idx: graph.index_of(task).unwrap() as i64,
            tool: "test:echo".into(),
            status,
            attempt,
            agent: Some("w".into()),
            outputs: Some(json!({})),
            error: None,
            started_at: Some(1),
            finished_at: None,
            restored_from: None,
        };
        let rows = [
            row("a", TaskStatus::Succeeded, 1),
            row("b", TaskStatus::Running, 2),
            row("c", TaskStatus::Succeeded, 1),
        ];
        let mut s = RunState::new(graph, &rows);
        assert_eq!((s.open(), s.succeeded()), (3, 2));
        assert_eq!(
            status(&s, 1),
            TaskStatus::Ready,
            "in flight then, ready now"
        );
        assert_eq!(s.restart(), (vec![1], vec![]));
        s.begin_attempt(1, CancellationToken::new());
        assert_eq!(s.task(1).attempt, 3, "the next attempt number");
        s.started(1, "w", 5).unwrap();
        assert_eq!(s.task(1).started_at, Some(1), "first start kept");
        assert_eq!(s.succeed(1, Map::new(), 6).unwrap(), [3]);
    }

    #[test]
    fn illegal_moves_change_nothing() {
        let mut s = diamond();
        assert!(s.started(3, "w", 1).is_err(), "pending → running");
        assert!(s.hold(3, Map::new(), "w".into(), 1).is_err());
        assert_eq!(status(&s, 3), TaskStatus::Pending);
        assert_eq!(s.open(), 5);
    }
}
