//! Tests of the run's pure state: one for every transition.

use super::*;
use crate::domain::plan::testing::graph;
use crate::domain::RunId;
use serde_json::json;

/// A diamond a → (b, c) → d, then e after d; b retries once.
fn diamond_graph() -> Arc<TaskGraph> {
    let text = "name: d\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a], retry: { max: 1, backoff_ms: 7 } }\n  - { id: c, tool: test:echo, depends_on: [a] }\n  - { id: d, tool: test:echo, depends_on: [b, c] }\n  - { id: e, tool: test:echo, depends_on: [d] }\n";
    Arc::new(graph(text))
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
    assert_eq!(
        s.succeed(0, outputs(json!({"x": 1})), 2).unwrap().ready,
        [1, 2]
    );
    run(&mut s, 1);
    assert_eq!(s.succeed(1, Map::new(), 3).unwrap(), Unblocked::default());
    run(&mut s, 2);
    assert_eq!(s.succeed(2, Map::new(), 4).unwrap().ready, [3]);
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
    let skipped = s.fail(1, "exit 1", 5).unwrap().skipped;
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
        Unblocked::default(),
        "d was skipped already"
    );
    assert_eq!(s.outcome(None).1.as_deref(), Some("task `c` failed: first"));
}

#[test]
fn a_task_that_cannot_run_fails_from_ready() {
    let mut s = diamond();
    s.set_status(0, TaskStatus::Ready, 0).unwrap();
    assert_eq!(s.fail(0, "bad input", 1).unwrap().skipped.len(), 4);
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
    assert_eq!(
        s.succeed(1, outputs(json!({"v": 2})), 4).unwrap().ready,
        [3]
    );
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
    assert_eq!(s.fail(1, "rejected by ann", 3).unwrap().skipped.len(), 2);
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
    assert_eq!(s.succeed(1, Map::new(), 6).unwrap().ready, [3]);
}

#[test]
fn illegal_moves_change_nothing() {
    let mut s = diamond();
    assert!(s.started(3, "w", 1).is_err(), "pending → running");
    assert!(s.hold(3, Map::new(), "w".into(), 1).is_err());
    assert_eq!(status(&s, 3), TaskStatus::Pending);
    assert_eq!(s.open(), 5);
}

/// a → b → c, and `undo` (run_if: failed) after b and c.
fn with_undo() -> RunState {
    let text = "name: u\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a] }\n  - { id: c, tool: test:echo, depends_on: [b] }\n  - { id: undo, tool: test:echo, depends_on: [b, c], run_if: failed }\n";
    RunState::new(Arc::new(graph(text)), &[])
}

#[test]
fn a_run_if_failed_task_runs_once_its_dependencies_ended_with_a_failure() {
    let mut s = with_undo();
    run(&mut s, 0);
    s.succeed(0, Map::new(), 1).unwrap();
    run(&mut s, 1);
    let u = s.fail(1, "gate", 2).unwrap();
    assert_eq!(u.skipped, [(2, "dependency `b` failed".to_string())]);
    assert_eq!(u.ready, [3], "c was skipped, b failed: the undo runs");
    run(&mut s, 3);
    s.succeed(3, Map::new(), 3).unwrap();
    assert_eq!(s.outcome(None).1.as_deref(), Some("task `b` failed: gate"));
}

#[test]
fn a_run_if_failed_task_is_skipped_when_nothing_failed() {
    let mut s = with_undo();
    for i in 0..2 {
        run(&mut s, i);
        assert!(s.succeed(i, Map::new(), 1).unwrap().skipped.is_empty());
    }
    run(&mut s, 2);
    let u = s.succeed(2, Map::new(), 2).unwrap();
    assert_eq!(u.skipped, [(3, "no dependency failed".to_string())]);
    assert!(u.ready.is_empty());
    assert_eq!(s.open(), 0);
    assert_eq!(s.outcome(None), (RunStatus::Succeeded, None));
}

#[test]
fn a_run_if_failed_task_is_skipped_when_its_dependencies_were_only_skipped() {
    let mut s = with_undo();
    run(&mut s, 0);
    let u = s.fail(0, "precondition", 1).unwrap();
    assert_eq!(u.skipped.len(), 3, "{u:?}");
    assert!(u.ready.is_empty());
    assert_eq!(s.task(3).error.as_deref(), Some("no dependency failed"));
}

#[test]
fn a_restarted_run_keeps_its_failure_and_its_pending_undo() {
    let mut s = with_undo();
    run(&mut s, 0);
    s.succeed(0, Map::new(), 1).unwrap();
    run(&mut s, 1);
    s.fail(1, "gate", 2).unwrap();
    let rows: Vec<TaskRow> = (0..4)
        .map(|i| {
            let t = s.task(i);
            TaskRow {
                run_id: RunId::new(),
                task_id: s.key(i).clone(),
                idx: i as i64,
                tool: "test:echo".into(),
                status: t.status,
                attempt: i64::from(t.attempt),
                agent: None,
                outputs: None,
                error: t.error.clone(),
                started_at: None,
                finished_at: t.finished_at,
                restored_from: None,
            }
        })
        .collect();
    let mut again = RunState::new(s.graph().clone(), &rows);
    assert_eq!(again.restart(), (vec![], vec![3]));
    assert_eq!(
        again.outcome(None).1.as_deref(),
        Some("task `b` failed: gate")
    );
}
