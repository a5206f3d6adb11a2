//! The `nofx` binary as users and scripts call it: exit codes, stdout contract, crash safety.
#![cfg(feature = "cli")]

mod common;

use common::{find, wait_for, TestStore};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn nofx(dir: &Path) -> Command {
    common::nofx_cmd(dir)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("nofx starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn bad_plans_exit_2_naming_the_culprit_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("cycle.yaml", "name: c\ntasks:\n  - { id: red, tool: test:echo, depends_on: [blue] }\n  - { id: green, tool: test:echo, depends_on: [red] }\n  - { id: blue, tool: test:echo, depends_on: [green] }\n", vec!["cycle.yaml:3:", "red -> green -> blue -> red"]),
        ("dep.yaml", "name: u\ntasks:\n  - { id: solo, tool: test:echo, depends_on: [nowhere_task] }\n", vec!["dep.yaml:3:", "nowhere_task"]),
        ("tool.yaml", "name: t\ntasks:\n  - { id: first, tool: \"made:up_tool\" }\n", vec!["unknown tool `made:up_tool`"]),
        ("dup.yaml", "name: d\ntasks:\n  - { id: again, tool: test:echo }\n  - { id: again, tool: test:echo }\n", vec!["dup.yaml:4:", "task `again`: duplicate"]),
        ("ref.yaml", "name: r\ntasks:\n  - { id: reader, tool: test:echo, inputs: { x: \"${tasks.missing_writer.outputs.y}\" } }\n", vec!["missing_writer"]),
        ("schema.yaml", "name: s\ntasks:\n  - { id: sh, tool: shell, inputs: { argv: \"echo hi\" } }\n", vec!["task `sh`: inputs of tool `shell` are invalid at `/argv`"]),
        ("caps.yaml", "name: c\ntasks:\n  - { id: g, tool: test:echo, capabilities: [gpu] }\n", vec!["task `g` requires capability `gpu`"]),
        ("input.yaml", "name: i\ninputs: { who: { type: string } }\ntasks:\n  - { id: a, tool: test:echo }\n", vec!["missing required plan input `who`"]),
        ("broken.yaml", "name: broken\ntasks:\n  - { id: a, tool: test:echo\n", vec!["broken.yaml: line "]),
        ("bad.json", "{\"name\": \"j\", \"tasks\": [{\"id\": \"a\", \"tool\": \"test:echo\", \"colour\": 1}]}", vec!["bad.json: line 1", "unknown field `colour`"]),
    ];
    for (file, body, words) in cases {
        write(dir.path(), file, body);
        let out = run(nofx(dir.path()).args(["validate", file]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(!err.contains("panicked"), "{file}: {err}");
        for w in words {
            assert!(err.contains(w), "{file}: expected `{w}` in: {err}");
        }
    }
    let out = run(nofx(dir.path()).args(["validate", "nope.yaml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read plan file nope.yaml"));
    let out = run(nofx(dir.path()).args(["run", "cycle.yaml", "--input", "x"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_agent_manifest_fails_at_load_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("agents")).unwrap();
    write(
        &dir.path().join("agents"),
        "a.toml",
        "id = \"a\"\nrole = \"worker\"\nmax_concurrency = 0\n",
    );
    write(
        &dir.path().join("agents"),
        "b.toml",
        "id = \"b\"\nrole = \"boss\"\n",
    );
    write(
        dir.path(),
        "p.yaml",
        "name: p\ntasks:\n  - { id: a, tool: test:echo }\n",
    );
    let out = run(nofx(dir.path()).args(["run", "p.yaml"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("agents/a.toml:3: `max_concurrency` must be at least 1, got 0"),
        "{err}"
    );
    assert!(
        err.contains("agents/b.toml:2: `role` must be coordinator, specialist or worker"),
        "{err}"
    );
}

#[test]
fn run_prints_the_run_id_last_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", "name: p\ninputs: { n: { type: integer, default: 3 } }\ntasks:\n  - { id: a, tool: test:echo, inputs: { n: \"${inputs.n}\" } }\n");
    let out = run(nofx(dir.path()).args(["run", "p.yaml", "--input", "n=5"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).lines().last().unwrap().to_string();
    let err = text(&out.stderr);
    assert!(
        err.contains("run succeeded") && err.contains(&id) && err.contains("corr_"),
        "{err}"
    );
    let show = run(nofx(dir.path()).args(["runs", "show", &id, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["tasks"][0]["outputs"]["n"], 5);

    let out = run(nofx(dir.path()).args(["run", "p.yaml", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["id", "status", "reason", "correlationId", "tasks"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["tasks"][0]["id"], "a");

    let events = run(nofx(dir.path()).args(["runs", "events", &id, "--json"]));
    let lines: Vec<serde_json::Value> = text(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["type"], "run.created");
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1);
        for k in [
            "seq",
            "type",
            "at",
            "runId",
            "taskId",
            "correlationId",
            "data",
        ] {
            assert!(e.get(k).is_some(), "event lacks {k}: {e}");
        }
    }
    let out = run(nofx(dir.path()).args(["run", "p.yaml", "--input", "n=five"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("plan input `n`: `five` is not an integer"));
}

#[test]
fn a_failing_plan_exits_1_and_a_detached_run_waits_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "f.yaml",
        "name: f\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [\"false\"] } }\n",
    );
    let out = run(nofx(dir.path()).args(["run", "f.yaml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("run failed: task `a` failed: `false` exited with code 1"));

    write(
        dir.path(),
        "d.yaml",
        "name: d\ntasks:\n  - { id: a, tool: test:echo }\n",
    );
    let out = run(nofx(dir.path()).args(["run", "d.yaml", "--detach"]));
    assert_eq!(out.status.code(), Some(0));
    let id = text(&out.stdout).trim().to_string();
    let ls = run(nofx(dir.path()).args(["runs", "ls", "--json", "--status", "pending"]));
    assert!(text(&ls.stdout).contains(&id));
    let out = run(nofx(dir.path()).args(["resume"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let show = run(nofx(dir.path()).args(["runs", "show", &id, "--json"]));
    assert!(text(&show.stdout).contains("\"status\": \"succeeded\""));
}

fn crash_plan(dir: &Path, steps: usize) {
    let mut p = String::from("name: crash\ntasks:\n");
    for i in 1..=steps {
        p.push_str(&format!(
            "  - id: s{i:02}\n    tool: shell\n    inputs: {{ argv: [sh, -c, 'echo $$ >> pids.txt; echo \"start s{i:02} $NOFX_IDEMPOTENCY_KEY $NOFX_ATTEMPT\" >> ledger.txt; sleep 0.3; echo \"end s{i:02}\" >> ledger.txt'] }}\n"
        ));
        if i > 1 {
            p.push_str(&format!("    depends_on: [s{:02}]\n", i - 1));
        }
    }
    write(dir, "crash.yaml", &p);
}

fn kill_and_resume(store: &TestStore, kill_after_starts: usize) {
    let dir = store.dir.path();
    let steps = 8;
    crash_plan(dir, steps);
    let data = dir.join("data");
    let url = store.url.clone();
    let cmd = |args: &[&str]| {
        let mut c = nofx(dir);
        c.args(["--data-dir", data.to_str().unwrap(), "--database-url", &url])
            .args(args);
        c
    };
    let mut child: Child = cmd(&["run", "crash.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let starts = |l: &str| l.lines().filter(|x| x.starts_with("start")).count();
    wait_for(Duration::from_secs(30), || {
        find(&data, "ledger.txt")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|l| starts(&l) >= kill_after_starts)
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ledger = find(&data, "ledger.txt").unwrap();
    let before = std::fs::read_to_string(&ledger).unwrap();
    // The step in flight at the kill was started and its process group dies with the owner.
    // Once its shell is gone (killed, or ended by itself), an `end` line it wrote after the
    // kill would show that it outlived the owner.
    let in_flight: i32 = std::fs::read_to_string(find(&data, "pids.txt").unwrap())
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("the step in flight wrote its pid");
    wait_for(Duration::from_secs(20), || !common::alive(in_flight));
    let after_kill = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(
        before, after_kill,
        "a child of the killed process kept writing"
    );

    let out = cmd(&["resume"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "resume failed: {}",
        text(&out.stderr)
    );
    let lines = std::fs::read_to_string(&ledger).unwrap();
    for i in 1..=steps {
        let ends = lines
            .lines()
            .filter(|l| *l == format!("end s{i:02}"))
            .count();
        assert_eq!(ends, 1, "step s{i:02} finished {ends} times:\n{lines}");
    }
    let started: Vec<&str> = lines.lines().filter(|l| l.starts_with("start")).collect();
    assert!(
        started.len() <= steps + 1,
        "more than the in-flight step ran twice:\n{lines}"
    );
    if started.len() == steps + 1 {
        // The repeated step kept its idempotency key and counted the attempt.
        let step = &started[kill_after_starts - 1]
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        let runs: Vec<&&str> = started
            .iter()
            .filter(|l| l.split(' ').nth(1) == Some(step))
            .collect();
        assert_eq!(runs.len(), 2, "{lines}");
        let key = |l: &str| l.split(' ').nth(2).unwrap().to_string();
        assert_eq!(key(runs[0]), key(runs[1]));
        assert!(
            runs[0].ends_with(" 1") && runs[1].ends_with(" 2"),
            "{lines}"
        );
    }
}

macro_rules! crash_tests {
    ($($name:ident: $n:expr),*) => {
        mod sigkill_then_resume_finishes_every_step_once {
            use super::*;
            $(
                mod $name {
                    use super::*;
                    #[tokio::test(flavor = "multi_thread")]
                    async fn sqlite() { let s = TestStore::sqlite().await; tokio::task::spawn_blocking(move || kill_and_resume(&s, $n)).await.unwrap(); }
                    #[tokio::test(flavor = "multi_thread")]
                    async fn postgres() { let s = TestStore::postgres().await; tokio::task::spawn_blocking(move || kill_and_resume(&s, $n)).await.unwrap(); }
                }
            )*
        }
    };
}

crash_tests!(at_first_step: 1, at_third_step: 3, at_seventh_step: 7);

/// A Ctrl-C the moment the run is announced (before its progress is shown) stops it in
/// order as well: the signal is caught from the start of the command.
#[test]
fn ctrl_c_right_after_the_run_starts_is_an_orderly_stop() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.yaml",
        "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [sleep, '30'] } }\n",
    );
    for _ in 0..5 {
        let mut child = nofx(dir.path())
            .args(["run", "p.yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains(" started") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "no start line");
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{line}{rest}");
        assert!(rest.contains("is resumable: nofx resume"), "{rest}");
    }
}

#[test]
fn ctrl_c_stops_tasks_exits_130_and_leaves_the_run_resumable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [sh, -c, 'echo x > started; sleep 30; echo late > late'] } }\n  - { id: b, tool: test:echo, depends_on: [a] }\n");
    let child = nofx(dir.path())
        .args(["run", "p.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), || {
        find(&dir.path().join(".nofx"), "started").is_some()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("is resumable: nofx resume"), "{err}");
    let ls = run(nofx(dir.path()).args(["runs", "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(v["runs"][0]["status"], "running");
    let id = v["runs"][0]["id"].as_str().unwrap().to_string();
    // It says it needs `nofx resume`: in the list, in the table, filtered, and in show.
    assert_eq!(v["runs"][0]["resumable"], true, "{v}");
    let ls = run(nofx(dir.path()).args(["runs", "ls", "--status", "interrupted", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(v["runs"][0]["id"], id.as_str(), "{v}");
    let table = text(&run(nofx(dir.path()).args(["runs", "ls"])).stdout);
    assert!(table.contains(&format!("nofx resume {id}")), "{table}");
    let show = run(nofx(dir.path()).args(["runs", "show", &id, "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        (s["resumable"].as_bool(), s["owner"].is_null()),
        (Some(true), true),
        "{s}"
    );
    // The interrupted process released its lease: another process can cancel at once.
    let out = run(nofx(dir.path()).args(["runs", "cancel", &id]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let show = run(nofx(dir.path()).args(["runs", "show", &id, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["status"], "cancelled");
    assert!(find(&dir.path().join(".nofx"), "late").is_none());
}

#[test]
fn cancel_from_another_process_reaches_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [sh, -c, 'echo x > started; sleep 30'] } }\n");
    let child = nofx(dir.path())
        .args(["run", "p.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), || {
        find(&dir.path().join(".nofx"), "started").is_some()
    });
    let ls = run(nofx(dir.path()).args(["runs", "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let id = v["runs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["runs"][0]["resumable"], false, "its owner lives: {v}");
    // Resume refuses while the owner lives and says whose lease it is.
    let mut resume = nofx(dir.path())
        .args(["resume", &id])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says so before anything else happens (the cancel below ends the run).
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = resume.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let said = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    assert!(said.contains("is leased by process"), "{said}");
    let started = Instant::now();
    let out = run(nofx(dir.path()).args(["runs", "cancel", &id, "--reason", "enough"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("asked process {}", child.id())),
        "{}",
        text(&out.stderr)
    );
    let owner = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(owner.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&owner.stdout).unwrap();
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["reason"], "enough");
    let _ = resume.kill();
    let _ = resume.wait();
}

#[test]
fn schema_plan_is_json_and_agents_ls_lists_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(nofx(dir.path()).args(["schema", "plan"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["tasks"].is_object());
    let out = run(nofx(dir.path()).args(["agents", "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let roles: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["coordinator", "specialist", "worker"]);
}

#[test]
fn artifacts_can_be_listed_and_written_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", "name: p\ntasks:\n  - { id: mk, tool: shell, inputs: { argv: [sh, -c, 'printf report > r.md; echo made'], artifacts: [r.md] } }\n");
    let out = run(nofx(dir.path()).args(["run", "p.yaml"]));
    let id = text(&out.stdout).trim().to_string();
    let ls = run(nofx(dir.path()).args(["runs", "artifacts", &id, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    // The document of `GET /runs/{id}/artifacts`: task, name, sha256, size, createdAt.
    assert_eq!(v["artifacts"][0]["task"], "mk", "{v}");
    assert_eq!(
        v["artifacts"][0]["sha256"].as_str().map(str::len),
        Some(64),
        "{v}"
    );
    assert!(
        v["artifacts"][0]["createdAt"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{v}"
    );
    let names: Vec<&str> = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["r.md", "stderr", "stdout"]);
    let out = run(nofx(dir.path()).args(["runs", "artifacts", &id, "stdout"]));
    assert_eq!(text(&out.stdout), "made\n");
    let out = run(nofx(dir.path()).args(["runs", "artifacts", &id, "mk/r.md", "-o", "copy.md"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy.md")).unwrap(),
        "report"
    );
    let out = run(nofx(dir.path()).args(["runs", "artifacts", &id, "nope"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(nofx(dir.path()).args(["runs", "show", "ffffffff"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no run `ffffffff`"));
}

#[test]
fn a_policy_file_refuses_unlisted_commands_before_and_while_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    write(
        &dir.path().join("policies"),
        "tools.toml",
        "[commands]\nallow = [\"echo\", \"sh\"]\n",
    );
    // Written out: refused at validation, nothing runs (exit 2).
    write(dir.path(), "p.yaml", "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [ls] } }\n  - { id: b, tool: test:echo, gates: [ { kind: command, argv: [curl, x] } ] }\n");
    for cmd in ["validate", "run"] {
        let out = run(nofx(dir.path()).args([cmd, "p.yaml"]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("p.yaml:3: task `a`: command `ls` is not allowed by the command policy"),
            "{err}"
        );
        assert!(
            err.contains("p.yaml:4: task `b`: command `curl` is not allowed"),
            "{err}"
        );
    }
    // Known only at run time (a reference): the task fails with the policy's reason.
    write(dir.path(), "q.yaml", "name: q\ninputs: { cmd: { type: string, default: ls } }\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [\"${inputs.cmd}\"] } }\n");
    let out = run(nofx(dir.path()).args(["run", "q.yaml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("command `ls` is not allowed by the command policy"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_planned_through_a_local_openai_compatible_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // Without a provider: one sentence saying how to configure one, exit 2.
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(nofx(&d).args(["run", "--goal", "count to three"]))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: cannot plan the goal: no model provider is configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, or set OPENAI_BASE_URL to a local OpenAI-compatible server"),
        "{err}"
    );

    let plan = serde_json::json!({"name": "count", "tasks": [
        {"id": "one", "tool": "test:echo", "inputs": {"n": 1}},
        {"id": "two", "tool": "test:echo", "inputs": {"n": 2}, "depends_on": ["one"]}
    ]});
    let answer = || common::llm::openai_text(&format!("```json\n{plan}\n```"), 700, 90);
    let (base, script) =
        common::llm::server("/v1/chat/completions", vec![answer(), answer()]).await;
    let url = format!("{base}/v1");
    let out = tokio::task::spawn_blocking({
        let (d, url) = (d.clone(), url.clone());
        move || {
            run(nofx(&d).env("OPENAI_BASE_URL", &url).args([
                "run",
                "--goal",
                "count to two",
                "--dry-run",
            ]))
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("name: count") && yaml.contains("id: two"),
        "{yaml}"
    );
    // A local server needs no key: none is sent.
    let seen = script.seen();
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(seen[0].body["model"], "gpt-4.1-mini");

    let out = tokio::task::spawn_blocking({
        let (d, url) = (d.clone(), url.clone());
        move || {
            run(nofx(&d).env("OPENAI_BASE_URL", &url).args([
                "run",
                "--goal",
                "count to two",
                "--json",
            ]))
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run_doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run_doc["status"], "succeeded");
    assert_eq!(run_doc["tasks"].as_array().unwrap().len(), 2);

    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || run(nofx(&d).args(["usage", "--json", "--group-by", "hour"]))
    })
    .await
    .unwrap();
    let usage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(usage["summary"]["totalCalls"], 2, "{usage}");
    assert_eq!(usage["summary"]["totalTokens"], 1580);
}

#[test]
fn route_explain_says_which_rule_matched_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(nofx(dir.path()).args([
        "route",
        "--explain",
        "--tool",
        "llm:generate",
        "--tokens",
        "500",
        "--output-tokens",
        "200",
        "--priority",
        "low",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("rule 2 `echo`: no — tool is `llm:generate`, not `test:echo`"),
        "{s}"
    );
    assert!(
        s.contains("rule 3 `cheap-low-priority`: MATCH — priority is low; estimated cost"),
        "{s}"
    );
    assert!(s.contains("model: gpt-small"), "{s}");
    let out = run(nofx(dir.path()).env("ANTHROPIC_API_KEY", "k").args([
        "route",
        "--json",
        "--tool",
        "test:echo",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["decision"]["model"], "claude-haiku");
    assert_eq!(doc["decision"]["rule"], "echo");
    let out = run(nofx(dir.path()).args(["route", "--tokens", "5000000"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("context window"));
}

/// Starts `nofx serve` on an ephemeral port in `dir`; returns the child and its base URL.
fn start_serve(dir: &Path, grace: &str) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = nofx(dir)
        .args(["serve", "--bind", "127.0.0.1:0", "--grace", grace])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("nofx serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("serve says where it listens").unwrap();
        if let Some(rest) = line.strip_prefix("nofx serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_finishes_runs_within_its_grace_on_sigterm_and_resumes_the_rest_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::create_dir(d.join("policies")).unwrap();
    write(
        &d.join("policies"),
        "tools.toml",
        "[commands]\nallow = [\"sleep\"]\n",
    );
    let key = text(
        &run(nofx(&d).args([
            "keys",
            "create",
            "--project",
            "ops",
            "--scope",
            "submit,shell",
        ]))
        .stdout,
    )
    .trim()
    .lines()
    .last()
    .unwrap()
    .to_string();
    let http = reqwest::Client::new();
    let plan =
        "name: nap\ntasks:\n  - { id: nap, tool: shell, inputs: { argv: [sleep, \"1\"] } }\n";
    let submit = |base: String| {
        let (http, key) = (http.clone(), key.clone());
        async move {
            let r = http
                .post(format!("{base}/runs"))
                .bearer_auth(&key)
                .header("content-type", "application/yaml")
                .body(plan)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            let v: serde_json::Value = r.json().await.unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    };
    let status = |id: String| {
        let d = d.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                run(nofx(&d).args(["runs", "show", &id, "--json"]))
            })
            .await
            .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["status"].as_str().unwrap().to_string()
        }
    };

    // With a grace period, the run in flight finishes before the server exits (cleanly).
    let (mut child, base) = start_serve(&d, "20");
    let id = submit(base).await;
    sigterm(&child);
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0));
    assert_eq!(status(id).await, "succeeded");

    // Without one, it is interrupted (resumable), and the next server takes it up.
    let (mut child, base) = start_serve(&d, "0");
    let id = submit(base).await;
    sigterm(&child);
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0));
    assert_eq!(status(id.clone()).await, "running");
    let (child, _) = start_serve(&d, "20");
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(id.clone()).await != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the restarted server did not finish the run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_spans_carrying_the_correlation_id_are_exported() {
    use axum::routing::post;
    let got: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/json");
                    sink.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    "{}"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    write(
        &d,
        "p.yaml",
        "name: t\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n",
    );
    let out = tokio::task::spawn_blocking(move || {
        run(nofx(&d)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .args(["run", "p.yaml", "--correlation-id", "trace-me-42"]))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The exporter flushes before the process exits.
    let batches = got.lock().unwrap().clone();
    let mut names = Vec::new();
    for b in &batches {
        for rs in b["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    let attrs = span["attributes"].as_array().unwrap();
                    let corr = attrs.iter().find(|a| a["key"] == "corr");
                    if corr.is_some_and(|c| c["value"]["stringValue"] == "trace-me-42") {
                        names.push(span["name"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    assert!(names.iter().any(|n| n == "run"), "{names:?}");
    assert!(names.iter().any(|n| n == "nofx"), "task spans: {names:?}");
}

#[test]
fn bench_commit_measures_one_row_transactions_through_the_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    for store in ["memory", "sqlite"] {
        let out = run(nofx(dir.path()).args([
            "bench", "--shape", "commit", "--tasks", "20,40", "--store", store,
        ]));
        assert!(out.status.success(), "{store}: {}", text(&out.stderr));
        let lines: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{store}");
        for (line, n) in lines.iter().zip([20, 40]) {
            assert_eq!(line["shape"], "commit");
            assert_eq!(line["store"], store);
            assert_eq!(line["tasks"], n);
            assert!(line["tasks_per_s"].as_f64().unwrap() > 0.0, "{line}");
            assert!(line["p99_ms"].as_f64().unwrap() >= line["p50_ms"].as_f64().unwrap());
        }
    }
    let out = run(nofx(dir.path()).args(["bench", "--shape", "commit", "--tasks", "0"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--tasks must be at least 1"));
}

#[test]
fn bench_reports_the_task_latencies_of_every_size_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(nofx(dir.path()).args(["bench", "--tasks", "50,200,400"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, n) in lines.iter().zip([50, 200, 400]) {
        assert_eq!(line["shape"], "fanout");
        assert_eq!(line["tasks"], n);
        // A task waits from ready to committed: never nothing, whichever size.
        let p50 = line["p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0, "{line}");
        assert!(line["p99_ms"].as_f64().unwrap() >= p50, "{line}");
    }
}
