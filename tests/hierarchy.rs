//! Agent hierarchies through the library API, on SQLite and on Postgres: tasks that decompose
//! into static sub-plans and `for_each` groups at run time, merged results, failure policies,
//! limits, cancel.

mod common;

use common::{events, plan};
use nofx::events::EventData;
use nofx::plan::{Limits, PlanSource};
use nofx::tools::{tool_fn, ToolError, ToolOutput};
use nofx::{EventType, RunStatus, TaskStatus};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A plan (as JSON) with one task of `n` static subtasks merged as `merge`.
fn static_plan(merge: Value, n: usize) -> PlanSource {
    let subtasks: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("s{i}"), "tool": "test:echo", "inputs": {"text": format!("<{i}>"), "n": i}}))
        .collect();
    let doc = json!({
        "name": "static",
        "tasks": [
            {"id": "split", "complexity": "high", "decompose": {"subtasks": subtasks, "merge": merge}},
            {"id": "after", "tool": "test:echo", "inputs": {"got": "${tasks.split.outputs}"}}
        ]
    });
    PlanSource::parse(&doc.to_string(), nofx::plan::Format::Json, None).unwrap()
}

fn outputs<'a>(out: &'a nofx::Outcome, id: &str) -> &'a Value {
    let t = out
        .tasks
        .iter()
        .find(|t| t.id.as_str() == id)
        .unwrap_or_else(|| panic!("no task {id}"));
    t.outputs
        .as_ref()
        .unwrap_or_else(|| panic!("task {id} has no outputs ({:?})", t.status))
}

fn task<'a>(out: &'a nofx::Outcome, id: &str) -> &'a nofx::runtime::TaskOutcome {
    out.tasks
        .iter()
        .find(|t| t.id.as_str() == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

both_stores! {
    async fn static_subtasks_merge_as_object_list_and_concat(store) {
        let agents = vec![
            nofx::AgentSpec::new("boss", nofx::Role::Coordinator),
            nofx::AgentSpec::new("helper", nofx::Role::Worker).with_affinity(["boss"]),
            nofx::AgentSpec::new("other", nofx::Role::Worker),
        ];
        let rt = store.builder().agents(agents).build().await.unwrap();
        // object: by subtask id.
        let run = rt.submit(&static_plan(json!("object"), 100), Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert_eq!(out.tasks.len(), 102);
        let merged = outputs(&out, "split").as_object().unwrap();
        assert_eq!(merged.len(), 100);
        assert_eq!(merged["s42"], json!({"text": "<42>", "n": 42}));
        assert_eq!(outputs(&out, "after")["got"]["s7"]["n"], json!(7));
        // Subtasks are real tasks: rows, tree fields, the same statuses.
        let s3 = task(&out, "split.s3");
        assert_eq!((s3.status, s3.depth, s3.parent_task_id.as_ref().map(|k| k.as_str())), (TaskStatus::Succeeded, 1, Some("split")));
        assert_eq!(out.tasks[0].id.as_str(), "split");
        assert_eq!(out.tasks[1].id.as_str(), "split.s0", "subtasks follow their parent");
        assert_eq!(out.tasks[101].id.as_str(), "after");
        // The decomposition is committed before any subtask starts; the merge before the
        // parent succeeds; the subtasks' parent agent is the agent that decomposed.
        let evs = events(&rt, run.id()).await;
        let seq = |kind: EventType, task: &str| evs.iter().find(|e| e.kind == kind && e.task_id.as_ref().is_some_and(|t| t.as_str() == task)).map(|e| e.seq).unwrap_or_else(|| panic!("no {kind} for {task}"));
        let decomposed = evs.iter().find(|e| e.kind == EventType::TaskDecomposed).unwrap();
        let Ok(EventData::TaskDecomposed(d)) = decomposed.payload() else { panic!() };
        assert_eq!((d.source.as_str(), d.subtasks.len(), d.depth), ("static", 100, 1));
        assert_eq!(d.subtasks[0], "split.s0");
        let first_start = evs.iter().filter(|e| e.kind == EventType::TaskStarted && e.task_id.as_ref().is_some_and(|t| t.as_str().starts_with("split."))).map(|e| e.seq).min().unwrap();
        assert!(decomposed.seq < first_start);
        assert!(seq(EventType::TaskMerged, "split") < seq(EventType::TaskSucceeded, "split"));
        let delegated = evs.iter().find(|e| e.kind == EventType::TaskDelegated && e.task_id.as_ref().is_some_and(|t| t.as_str() == "split.s0")).unwrap();
        assert_eq!(task(&out, "split").agent.as_deref(), Some("boss"), "a coordinator takes the complex task");
        assert_eq!(d.agent.as_deref(), Some("boss"));
        let scored = |who: &str| delegated.data["candidates"].as_array().unwrap().iter().find(|c| c["agent"] == json!(who)).unwrap()["score"].as_i64().unwrap();
        assert_eq!(scored("helper") - scored("other"), 15, "affinity with the decomposing agent counts");
        assert_eq!(delegated.data["agent"], json!("helper"));
        // One stored decomposition, round 1.
        let rows = rt.store().decompositions(run.id()).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].round, rows[0].subtasks.len()), (1, 100));

        // list of one output, in subtask order.
        let out = rt.submit(&static_plan(json!({"kind": "list", "output": "n"}), 100), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let items = outputs(&out, "split")["items"].as_array().unwrap().clone();
        assert_eq!(items, (0..100).map(|i| json!(i)).collect::<Vec<_>>());
        // concat of strings.
        let out = rt.submit(&static_plan(json!({"kind": "concat", "output": "text"}), 100), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let text = outputs(&out, "split")["value"].as_str().unwrap().to_string();
        assert!(text.starts_with("<0><1><2>") && text.ends_with("<99>"), "{text}");
        // concat that cannot: numbers.
        let out = rt.submit(&static_plan(json!({"kind": "concat", "output": "n"}), 3), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(task(&out, "split").error.as_deref().unwrap().contains("`concat` joins strings or lists; subtask `s0` gave a number"), "{:?}", task(&out, "split").error);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn for_each_makes_one_subtask_per_item_of_a_run_time_list(store) {
        let rt = store.runtime().await;
        let items: Vec<Value> = (0..1000).map(|i| json!({"name": format!("f{i}.txt"), "size": i})).collect();
        let doc = json!({
            "name": "each",
            "tasks": [
                {"id": "list", "tool": "test:echo", "inputs": {"files": items}},
                {"id": "each", "decompose": {
                    "for_each": "${tasks.list.outputs.files}", "as": "file",
                    "task": {"tool": "test:echo", "inputs": {"name": "${item.file.name}", "line": "size ${item.file.size}", "whole": "${item.file}"}},
                    "merge": {"kind": "list", "output": "name"}
                }},
                {"id": "count", "tool": "test:echo", "inputs": {"names": "${tasks.each.outputs.items}"}}
            ]
        });
        let src = PlanSource::parse(&doc.to_string(), nofx::plan::Format::Json, None).unwrap();
        let run = rt.submit(&src, Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert_eq!(out.tasks.len(), 1003);
        assert_eq!(outputs(&out, "each.999")["line"], json!("size 999"));
        assert_eq!(outputs(&out, "each.5")["whole"], json!({"name": "f5.txt", "size": 5}));
        let names = outputs(&out, "count")["names"].as_array().unwrap();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[10], json!("f10.txt"));
        let evs = events(&rt, run.id()).await;
        let d = evs.iter().find(|e| e.kind == EventType::TaskDecomposed).unwrap();
        assert_eq!(d.data["source"], json!("for_each"));
        assert_eq!(d.data["subtasks"].as_array().unwrap().len(), 1000);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn an_item_is_data_never_a_reference(store) {
        let rt = store.runtime().await;
        let src = plan("name: inj\ninputs: { secret: { type: string, default: hunter2 } }\ntasks:\n  - { id: list, tool: test:echo, inputs: { xs: [\"${inputs.secret}x\"] } }\n  - id: each\n    decompose:\n      for_each: \"${tasks.list.outputs.xs}\"\n      as: x\n      task: { tool: test:echo, inputs: { v: \"${item.x}\", t: \"got ${item.x}\" } }\n  - { id: evil, tool: test:echo, inputs: { xs: [\"$${inputs.secret}\"] } }\n  - id: each2\n    decompose:\n      for_each: \"${tasks.evil.outputs.xs}\"\n      as: x\n      task: { tool: test:echo, inputs: { v: \"${item.x}\", t: \"got ${item.x}\" } }\n");
        let out = rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert_eq!(outputs(&out, "each.0"), &json!({"v": "hunter2x", "t": "got hunter2x"}));
        // An item holding `${inputs.secret}` (text a task wrote) stays that text.
        assert_eq!(outputs(&out, "each2.0"), &json!({"v": "${inputs.secret}", "t": "got ${inputs.secret}"}));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_failed_subtask_fails_its_parent_or_is_collected(store) {
        let blocker = tool_fn("test:block", json!({"type": "object"}), |ctx| async move {
            ctx.cancel.cancelled().await;
            Err::<ToolOutput, _>(ToolError::Cancelled)
        });
        let rt = store.builder().tool(blocker).build().await.unwrap();
        let body = |policy: &str| format!("name: f\ntasks:\n  - id: p\n    decompose:\n      on_subtask_failure: {policy}\n      subtasks:\n        - {{ id: ok, tool: test:echo, inputs: {{ v: 1 }} }}\n        - {{ id: bad, tool: shell, inputs: {{ argv: [sh, -c, 'exit 4'] }} }}\n        - {{ id: after_bad, tool: test:echo, depends_on: [bad] }}\n{}  - {{ id: next, tool: test:echo, depends_on: [p] }}\n", if policy == "fail" { "        - { id: slow, tool: test:block }\n" } else { "" });
        // fail: the siblings are cancelled (a blocked one included) and the parent fails.
        let out = rt.submit(&plan(&body("fail")), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(out.reason.as_deref(), Some("task `p` failed: subtask `p.bad` failed: `sh` exited with code 4"));
        assert_eq!(task(&out, "p.slow").status, TaskStatus::Cancelled);
        assert_eq!(task(&out, "p.after_bad").status, TaskStatus::Skipped);
        assert_eq!(task(&out, "next").status, TaskStatus::Skipped);
        // collect: the others go on; the parent succeeds with what there is.
        let run = rt.submit(&plan(&body("collect")), Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let p = outputs(&out, "p");
        assert_eq!(p["ok"], json!({"v": 1}));
        assert_eq!(p["partial"], json!(true));
        assert_eq!(p["failures"], json!([
            {"task": "p.bad", "status": "failed", "error": "`sh` exited with code 4"},
            {"task": "p.after_bad", "status": "skipped", "error": "dependency `p.bad` failed"}
        ]));
        assert_eq!(task(&out, "next").status, TaskStatus::Succeeded);
        let merged = events(&rt, run.id()).await.into_iter().find(|e| e.kind == EventType::TaskMerged).unwrap();
        assert_eq!(merged.data["partial"], json!(true));
        rt.shutdown().await;
    }
}

both_stores! {
    async fn limits_fail_the_task_and_store_nothing_of_the_sub_plan(store) {
        let rt = store.builder().limits(Limits { max_depth: 2, max_for_each: 10, max_tasks: 30, ..Limits::default() }).build().await.unwrap();
        let check = |out: &nofx::Outcome, id: &str, want: &str| {
            let t = task(out, id);
            assert_eq!(t.status, TaskStatus::Failed, "{id}");
            assert_eq!(t.error.as_deref(), Some(want), "{id}");
        };
        // Depth: the third level of subtasks is past max_depth 2.
        let deep = plan("name: deep\ntasks:\n  - id: a\n    decompose:\n      subtasks:\n        - id: b\n          decompose:\n            subtasks:\n              - id: c\n                decompose:\n                  subtasks:\n                    - { id: d, tool: test:echo }\n");
        let run = rt.submit(&deep, Map::new()).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        check(&out, "a.b.c", "limit_exceeded: max_depth 2: the subtasks of `a.b.c` would be at depth 3");
        assert!(out.tasks.iter().all(|t| t.id.as_str() != "a.b.c.d"), "nothing of the sub-plan is stored");
        assert_eq!(rt.store().decompositions(run.id()).await.unwrap().len(), 2);
        let failed = events(&rt, run.id()).await.into_iter().find(|e| e.kind == EventType::TaskFailed).unwrap();
        assert_eq!(failed.data["errorType"], json!("limit_exceeded"));
        // Size: the task's own max_subtasks, then the runtime's max_for_each, then max_tasks.
        let wide = plan("name: wide\ntasks:\n  - id: w\n    decompose:\n      max_subtasks: 2\n      subtasks: [{ id: a, tool: test:echo }, { id: b, tool: test:echo }, { id: c, tool: test:echo }]\n");
        let out = rt.submit(&wide, Map::new()).await.unwrap().wait().await.unwrap();
        check(&out, "w", "limit_exceeded: max_subtasks (of the task) 2: the sub-plan of `w` has 3 subtasks");
        let each = |n: usize| plan(&format!("name: each\ntasks:\n  - {{ id: l, tool: test:echo, inputs: {{ xs: {:?} }} }}\n  - id: e\n    decompose: {{ for_each: \"${{tasks.l.outputs.xs}}\", as: x, task: {{ tool: test:echo, inputs: {{ x: \"${{item.x}}\" }} }} }}\n", (0..n).collect::<Vec<_>>()));
        let out = rt.submit(&each(11), Map::new()).await.unwrap().wait().await.unwrap();
        check(&out, "e", "limit_exceeded: max_for_each 10: `${tasks.l.outputs.xs}` has 11 items");
        let out = rt.submit(&each(10), Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        let two = plan("name: two\ntasks:\n  - { id: l, tool: test:echo, inputs: { xs: [0,1,2,3,4,5,6,7,8,9] } }\n  - id: e\n    decompose: { for_each: \"${tasks.l.outputs.xs}\", as: x, task: { tool: test:echo } }\n  - id: f\n    depends_on: [e]\n    decompose: { for_each: \"${tasks.l.outputs.xs}\", as: x, task: { tool: test:echo } }\n  - id: g\n    depends_on: [f]\n    decompose: { for_each: \"${tasks.l.outputs.xs}\", as: x, task: { tool: test:echo } }\n");
        let out = rt.submit(&two, Map::new()).await.unwrap().wait().await.unwrap();
        check(&out, "g", "limit_exceeded: max_tasks 30: the run has 24 tasks and `g` adds 10");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_cancel_reaches_every_subtask_of_a_large_for_each(store) {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = started.clone();
        let blocker = tool_fn("test:block", json!({"type": "object"}), move |ctx| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                ctx.cancel.cancelled().await;
                Err::<ToolOutput, _>(ToolError::Cancelled)
            }
        });
        let rt = store.builder().tool(blocker).build().await.unwrap();
        let src = plan(&format!("name: c\ntasks:\n  - {{ id: l, tool: test:echo, inputs: {{ xs: {:?} }} }}\n  - id: e\n    decompose: {{ for_each: \"${{tasks.l.outputs.xs}}\", as: x, task: {{ tool: test:block }} }}\n  - {{ id: after, tool: test:echo, depends_on: [e] }}\n  - id: s\n    decompose: {{ subtasks: [{{ id: x, tool: test:block }}, {{ id: y, tool: test:echo, depends_on: [x] }}] }}\n", (0..1000).collect::<Vec<_>>()));
        let run = rt.submit(&src, Map::new()).await.unwrap();
        common::until(Duration::from_secs(30), || { let s = started.clone(); async move { s.load(std::sync::atomic::Ordering::SeqCst) >= 10 } }).await;
        // While it runs, its document lists every subtask, those that have not moved too.
        let id = run.id();
        common::until(Duration::from_secs(30), || { let rt = rt.clone(); async move { rt.store().decompositions(id).await.unwrap().len() == 2 } }).await;
        let now = nofx::Outcome::load(rt.store(), run.id()).await.unwrap();
        assert_eq!(now.tasks.len(), 1006);
        assert_eq!(now.tasks[2].id.as_str(), "e.0");
        assert_eq!(now.tasks[1001].id.as_str(), "e.999");
        let y = task(&now, "s.y");
        assert_eq!((y.status, y.depth, y.parent_task_id.as_ref().map(|k| k.as_str())), (TaskStatus::Pending, 1, Some("s")));
        run.cancel().await.unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), run.wait()).await.expect("the cancel ends the run").unwrap();
        assert_eq!(out.status, RunStatus::Cancelled);
        assert_eq!(out.tasks.len(), 1006);
        assert!(out.tasks.iter().filter(|t| t.id.as_str() != "l").all(|t| t.status == TaskStatus::Cancelled), "every subtask, the parent and its dependent are cancelled");
        rt.shutdown().await;
    }
}

both_stores! {
    async fn restore_and_fork_keep_sub_plans_and_run_again_only_what_must(store) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let healthy = std::sync::Arc::new(AtomicBool::new(false));
        let h = healthy.clone();
        let flaky = tool_fn("test:flaky", json!({"type": "object"}), move |_| {
            let ok = h.load(Ordering::SeqCst);
            async move {
                if ok { Ok(ToolOutput::new().output("ok", true)) } else { Err(ToolError::failed("not yet")) }
            }
        });
        let rt = store.builder().tool(flaky).build().await.unwrap();
        let src = plan("name: r\ntasks:\n  - id: p\n    decompose:\n      subtasks:\n        - { id: a, tool: test:echo, inputs: { v: 1 } }\n        - { id: b, tool: test:flaky, depends_on: [a] }\n        - { id: c, tool: test:echo, inputs: { v: 3 } }\n  - { id: fin, tool: test:echo, inputs: { got: \"${tasks.p.outputs.b.ok}\" } }\n");
        let first = rt.submit(&src, Map::new()).await.unwrap();
        let out = first.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        let cp = rt.checkpoint(first.id(), None).await.unwrap();
        assert_eq!(cp.decompositions.as_array().unwrap().len(), 1, "the checkpoint holds the decomposition");
        let kept: Vec<&str> = cp.tasks.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert!(kept.contains(&"p.a"), "{kept:?}");
        healthy.store(true, Ordering::SeqCst);

        // Restore: the sub-plan is the checkpoint's; what succeeded is not run again.
        let restored = rt.restore(&cp.id, Default::default()).await.unwrap();
        let out = restored.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert_eq!(task(&out, "p.a").restored_from.as_deref(), Some(cp.id.as_str()));
        assert_eq!(task(&out, "p.b").attempts, 1);
        assert_eq!(outputs(&out, "fin")["got"], json!(true));
        let kinds: Vec<EventType> = events(&rt, restored.id()).await.iter().map(|e| e.kind).collect();
        assert!(!kinds.contains(&EventType::TaskDecomposed), "a restore does not decompose again");
        assert!(kinds.contains(&EventType::TaskMerged));
        assert_eq!(rt.store().decompositions(restored.id()).await.unwrap().len(), 1);

        // Fork at a subtask: it and what depends on it run again, its parent merges again,
        // its sub-plan stays.
        let fork = nofx::runtime::Fork { at: "p.b".into(), ..Default::default() };
        let forked = rt.fork(restored.id(), fork, Default::default()).await.unwrap();
        let out = forked.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert!(task(&out, "p.a").restored_from.is_some() && task(&out, "p.c").restored_from.is_some());
        assert!(task(&out, "p.b").restored_from.is_none() && task(&out, "p").restored_from.is_none() && task(&out, "fin").restored_from.is_none());
        let kinds: Vec<EventType> = events(&rt, forked.id()).await.iter().map(|e| e.kind).collect();
        assert!(!kinds.contains(&EventType::TaskDecomposed));
        // Fork at the decomposed task: it decomposes again.
        let fork = nofx::runtime::Fork { at: "p".into(), ..Default::default() };
        let again = rt.fork(restored.id(), fork, Default::default()).await.unwrap();
        let out = again.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert!(out.tasks.iter().all(|t| t.restored_from.is_none()), "nothing under a task that decomposes again is kept");
        let kinds: Vec<EventType> = events(&rt, again.id()).await.iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&EventType::TaskDecomposed));
        rt.shutdown().await;
    }
}

/// The examples from the command line: a for_each over a directory's files, a static
/// sub-plan; `runs show` prints the tree (a large group by its counts); a fork at a subtask.
#[cfg(feature = "cli")]
#[test]
fn the_hierarchy_examples_run_and_show_their_tree_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let example = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/plans")
            .join(name)
            .display()
            .to_string()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let run = |args: &[&str]| {
        let out = common::nofx_out(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        (text(&out.stdout).trim().to_string(), text(&out.stderr))
    };
    let show = |id: &str| -> Value {
        serde_json::from_str(&run(&["runs", "show", id, "--json"]).0).unwrap()
    };
    let outputs_of = |doc: &Value, id: &str| {
        doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == json!(id))
            .unwrap()["outputs"]
            .clone()
    };
    // for_each over sample files: 1 + 2 + 3 + 4 + 5 lines.
    let (id, err) = run(&["run", &example("each-file.yaml")]);
    assert!(
        err.contains("split   count into 5 subtask(s) (for_each, by "),
        "{err}"
    );
    assert!(err.contains("merged  count: 5 result(s) (concat)"), "{err}");
    let doc = show(&id);
    assert_eq!(outputs_of(&doc, "total")["stdout"], json!("15\n"));
    let sub = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!("count.3"))
        .unwrap()
        .clone();
    assert_eq!(
        (sub["parentTaskId"].clone(), sub["depth"].clone()),
        (json!("count"), json!(1))
    );
    // A directory of 30 files: the tree shows the group by its counts.
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..30 {
        std::fs::write(files.join(format!("f{i:02}.txt")), "x\n".repeat(i)).unwrap();
    }
    let input = format!("dir={}", files.display());
    let (id, _) = run(&["run", &example("each-file.yaml"), "--input", &input]);
    let (tree, _) = run(&["runs", "show", &id]);
    assert!(
        tree.contains("\n  count                    succeeded"),
        "{tree}"
    );
    assert!(
        tree.contains("    count.* 30 subtasks: 30 succeeded"),
        "{tree}"
    );
    assert!(
        !tree.contains("count.7 "),
        "a large group is not listed task by task: {tree}"
    );
    assert_eq!(outputs_of(&show(&id), "total")["stdout"], json!("435\n"));
    // A static sub-plan, indented under its task; a fork at one of its subtasks.
    let (id, _) = run(&["run", &example("release-review.yaml")]);
    let (tree, _) = run(&["runs", "show", &id]);
    assert!(
        tree.contains("\n    review.version         succeeded"),
        "{tree}"
    );
    assert_eq!(
        outputs_of(&show(&id), "publish")["stdout"],
        json!("Release nofx-demo 1.0\n built (built\n)\n")
    );
    let (forked, err) = run(&["runs", "fork", &id, "--at", "review.size"]);
    assert!(
        err.contains("to run: review, publish, review.size"),
        "{err}"
    );
    let doc = show(&forked);
    let restored = |t: &str| {
        !doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == json!(t))
            .unwrap()["restoredFrom"]
            .is_null()
    };
    assert!(restored("review.version") && restored("review.notes") && !restored("review.size"));
}

both_stores! {
    async fn a_decomposed_tasks_timeout_covers_its_sub_plan(store) {
        let blocker = tool_fn("test:block", json!({"type": "object"}), |ctx| async move {
            ctx.cancel.cancelled().await;
            Err::<ToolOutput, _>(ToolError::Cancelled)
        });
        let rt = store.builder().tool(blocker).build().await.unwrap();
        let src = plan("name: t\ntasks:\n  - id: p\n    timeout_s: 0.5\n    decompose:\n      subtasks:\n        - { id: quick, tool: test:echo }\n        - { id: stuck, tool: test:block }\n  - { id: other, tool: test:echo }\n");
        let out = tokio::time::timeout(Duration::from_secs(30), async { rt.submit(&src, Map::new()).await.unwrap().wait().await.unwrap() }).await.expect("the deadline ends the task");
        assert_eq!(out.status, RunStatus::Failed);
        assert_eq!(task(&out, "p").error.as_deref(), Some("timed out after 0.5s (its subtasks were cancelled)"));
        assert_eq!(task(&out, "p.stuck").status, TaskStatus::Cancelled);
        assert_eq!(task(&out, "p.quick").status, TaskStatus::Succeeded);
        assert_eq!(task(&out, "other").status, TaskStatus::Succeeded);
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_submitter_without_commands_cannot_reach_them_through_subtasks(store) {
        let models = nofx::models::ModelsConfig::shipped().api_key("openai", nofx::models::ApiKey::new("sk-test-0123456789"));
        let rt = store.builder().models(models).build().await.unwrap();
        let no_commands = || nofx::SubmitOptions { no_commands: true, ..Default::default() };
        for (yaml, what) in [
            ("name: a\ntasks:\n  - id: p\n    decompose:\n      subtasks:\n        - { id: s, tool: shell, inputs: { argv: [echo] } }\n", "task `p.s` (tool `shell`)"),
            ("name: b\ntasks:\n  - { id: l, tool: test:echo, inputs: { xs: [1] } }\n  - id: p\n    decompose: { for_each: \"${tasks.l.outputs.xs}\", as: x, task: { tool: shell, inputs: { argv: [echo] } } }\n", "task `p.ITEM` (tool `shell`)"),
            ("name: c\ntasks:\n  - id: p\n    decompose: { planner: true, goal: anything }\n", "task `p` (decompose with planner: its model may plan `shell` tasks)"),
        ] {
            let err = rt.submit_opts(&plan(yaml), Map::new(), no_commands()).await.unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        }
        rt.shutdown().await;
    }
}

both_stores! {
    async fn a_subtasks_approval_and_nested_for_each_over_a_siblings_output(store) {
        let rt = store.runtime().await;
        let src = plan("name: nested\ntasks:\n  - { id: base, tool: test:echo, inputs: { n: 10 } }\n  - id: outer\n    depends_on: [base]\n    decompose:\n      subtasks:\n        - { id: gen, tool: test:echo, inputs: { xs: [a, b, c], n: \"${tasks.base.outputs.n}\" } }\n        - id: each\n          decompose:\n            for_each: \"${tasks.gen.outputs.xs}\"\n            as: x\n            task: { tool: test:echo, inputs: { v: \"${item.x}-${tasks.gen.outputs.n}\" } }\n            merge: { kind: list, output: v }\n        - id: check\n          tool: test:echo\n          inputs: { got: \"${tasks.each.outputs.items}\" }\n          gates: [ { kind: manual, approvers: [ana] } ]\n  - { id: fin, tool: test:echo, inputs: { r: \"${tasks.outer.outputs.check.got}\" } }\n");
        let run = rt.submit(&src, Map::new()).await.unwrap();
        let id = run.id();
        common::until(Duration::from_secs(30), || {
            let rt = rt.clone();
            async move { rt.store().task(id, "outer.check").await.unwrap().is_some_and(|t| t.status == TaskStatus::Waiting) }
        })
        .await;
        let err = run.approve("outer.nope", "ana", None).await.unwrap_err();
        assert!(err.to_string().contains("has no task `outer.nope`"), "{err}");
        run.approve("outer.check", "ana", None).await.unwrap();
        let out = run.wait().await.unwrap();
        assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
        assert_eq!(outputs(&out, "fin")["r"], json!(["a-10", "b-10", "c-10"]));
        assert_eq!(task(&out, "outer.each.2").depth, 2);
        rt.shutdown().await;
    }
}
