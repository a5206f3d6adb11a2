//! What a new user meets first, through the `nofx` binary: a clean exit, dry runs that run
//! nothing, quiet pipes, exit codes that tell bad input from a failed run.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn nofx(dir: &Path, args: &[&str]) -> Output {
    common::nofx_out(dir, args)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plans")
        .join(name)
}

#[test]
fn thirty_runs_of_the_readme_plan_exit_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let plan = example("report.yaml");
    let plan = plan.to_str().unwrap();
    for i in 0..30 {
        let out = nofx(dir.path(), &["run", plan]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "run {i}: {err}");
        assert!(!err.contains("panicked"), "run {i}: {err}");
    }
    // A stored run resumed, then forked, exits as cleanly.
    let out = nofx(dir.path(), &["run", "--detach", plan]);
    let id = text(&out.stdout).trim().to_string();
    let out = nofx(dir.path(), &["resume", &id]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "resume: {err}");
    assert!(!err.contains("panicked"), "resume: {err}");
    let out = nofx(dir.path(), &["runs", "fork", &id, "--at", "check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "fork: {err}");
    assert!(!err.contains("panicked"), "fork: {err}");
}

#[test]
fn dry_run_of_a_plan_file_checks_and_prints_it_and_runs_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\ninputs: { n: { type: integer, default: 1 } }\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [\"touch\", \"ran-${inputs.n}\"] } }\n  - { id: b, tool: test:echo, inputs: { x: \"${tasks.a.outputs.stdout}\" } }\n",
    )
    .unwrap();
    let out = nofx(
        dir.path(),
        &["run", "--dry-run", "p.yaml", "--input", "n=7"],
    );
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("nothing was executed or stored"), "{err}");
    assert!(stdout.contains("n: 7"), "{stdout}");
    assert!(stdout.contains("ran-7"), "inputs resolved: {stdout}");
    assert!(
        stdout.contains("${tasks.a.outputs.stdout}"),
        "task references stay: {stdout}"
    );
    assert!(!dir.path().join(".nofx").exists(), "nothing stored");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("ran-")),
        "nothing ran"
    );
    // The printed plan is a plan that runs the same.
    std::fs::write(dir.path().join("printed.yaml"), &stdout).unwrap();
    let out = nofx(dir.path(), &["validate", "printed.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // JSON, and a bad plan refused with exit 2, and the plan read from stdin.
    let out = nofx(dir.path(), &["run", "--dry-run", "--json", "p.yaml"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["inputs"]["n"], 1);
    assert_eq!(doc["plan"]["tasks"][0]["inputs"]["argv"][1], "ran-1");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: b\ntasks:\n  - { id: a, tool: nope }\n",
    )
    .unwrap();
    let out = nofx(dir.path(), &["run", "--dry-run", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown tool `nope`"));
    let mut child = common::nofx_cmd(dir.path())
        .args(["run", "--dry-run", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"name: s\ntasks:\n  - { id: a, tool: test:echo }\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!dir.path().join(".nofx").exists(), "nothing stored");
}

#[test]
fn validate_refuses_what_run_refuses_and_lists_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\ntasks:\n  - { id: gen, tool: llm:generate, inputs: { prompt: hi } }\n  - { id: b, tool: test:echo, depends_on: [c] }\n  - { id: c, tool: test:echo, depends_on: [b] }\n  - { id: d, tool: nope }\n  - { id: e, tool: shell, inputs: { argv: [\"true\"], artifacts: [\"../up.txt\"] } }\n",
    )
    .unwrap();
    let out = nofx(dir.path(), &["validate", "p.yaml"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "p.yaml:3: task `gen`",
        "no model provider is configured",
        "dependency cycle: b -> c -> b",
        "unknown tool `nope`",
        "artifact `../up.txt` uses `..`",
    ] {
        assert!(err.contains(want), "`{want}` missing from: {err}");
    }
    // Broken policies are reported too, each naming its file, with the plan's problems.
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("routing.toml"), "[[rule]]\nbogus = 1\n").unwrap();
    std::fs::write(policies.join("checkpoints.toml"), "every = \"often\"\n").unwrap();
    let out = nofx(dir.path(), &["validate", "p.yaml"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("routing.toml"), "{err}");
    assert!(err.contains("checkpoints.toml"), "{err}");
    assert!(err.contains("unknown tool `nope`"), "{err}");
    // The same plan is refused by run with the same words, before anything is stored.
    std::fs::remove_dir_all(&policies).unwrap();
    let out = nofx(dir.path(), &["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("artifact `../up.txt` uses `..`"));
}

#[test]
fn shell_artifacts_that_leave_the_workspace_through_symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret\n").unwrap();
    let s = secret.display().to_string();
    let outside = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("p.yaml"),
        format!(
            "name: p\ntasks:\n  - {{ id: file, tool: shell, inputs: {{ argv: [\"ln\", \"-sf\", \"{s}\", \"link.txt\"], artifacts: [link.txt] }} }}\n  - {{ id: dir, tool: shell, inputs: {{ argv: [\"ln\", \"-sfn\", \"{outside}\", \"out\"], artifacts: [out/secret.txt] }} }}\n  - {{ id: inside, tool: shell, inputs: {{ argv: [\"sh\", \"-c\", \"mkdir -p sub && echo ok > sub/real.txt && ln -sf sub/real.txt good.txt\"], artifacts: [good.txt] }} }}\n"
        ),
    )
    .unwrap();
    let out = nofx(dir.path(), &["run", "--json", "p.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = run["tasks"].as_array().unwrap();
    let task = |id: &str| tasks.iter().find(|t| t["id"] == id).unwrap().clone();
    for id in ["file", "dir"] {
        let t = task(id);
        assert_eq!(t["status"], "failed", "{t}");
        assert!(
            t["error"]
                .as_str()
                .unwrap_or_default()
                .contains("leaves the workspace through a symlink"),
            "{t}"
        );
    }
    assert_eq!(task("inside")["status"], "succeeded");
    // Nothing of the secret was kept.
    let blobs = dir.path().join(".nofx/artifacts");
    let mut stack = vec![blobs];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let body = std::fs::read(&p).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&body).contains("top secret"),
                    "{}",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn keys_are_made_with_scopes_and_a_secret_given_to_revoke_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let out = nofx(dir.path(), &["keys", "create", "--project", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("with scope submit"));
    let secret = text(&out.stdout).trim().to_string();
    let out = nofx(
        dir.path(),
        &[
            "keys",
            "create",
            "--project",
            "acme",
            "--scope",
            "submit,shell",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let out = nofx(
        dir.path(),
        &["keys", "create", "--project", "acme", "--scope", "root"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`root` is not a scope"));
    let out = nofx(dir.path(), &["keys", "ls", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = &doc["keys"];
    let scopes: Vec<String> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            k["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert!(
        scopes.contains(&"submit".to_string()) && scopes.contains(&"submit,shell".to_string()),
        "{scopes:?}"
    );
    assert!(
        keys[0]["createdAt"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {keys}"
    );
    // Revoking by the secret works and never prints it.
    let out = nofx(dir.path(), &["keys", "revoke", &secret]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains(&secret), "{all}");
    let out = nofx(dir.path(), &["keys", "revoke", &secret]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2));
    assert!(!all.contains(&secret), "{all}");
}

#[test]
fn the_command_policy_matches_the_file_a_command_runs_not_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/tools.toml"),
        "[commands]\nallow = [\"cp\", \"true\"]\n",
    )
    .unwrap();
    // A task copies an allowed program and names the copy `true`: the copy is refused, the
    // real one runs.
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\ntasks:\n  - { id: copy, tool: shell, inputs: { argv: [cp, /bin/echo, ./true] } }\n  - { id: real, tool: shell, depends_on: [copy], inputs: { argv: [\"true\"] } }\n",
    )
    .unwrap();
    let out = nofx(dir.path(), &["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(
        dir.path().join("q.yaml"),
        "name: q\ntasks:\n  - { id: fake, tool: shell, inputs: { argv: [./true] } }\n",
    )
    .unwrap();
    let out = nofx(dir.path(), &["validate", "q.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("runs a file of the workspace"),
        "{}",
        text(&out.stderr)
    );
    let fake = dir.path().join("true");
    std::fs::copy("/bin/echo", &fake).unwrap();
    let plan = format!(
        "name: r\ntasks:\n  - {{ id: fake, tool: shell, inputs: {{ argv: [\"{}\"] }} }}\n",
        fake.display()
    );
    std::fs::write(dir.path().join("r.yaml"), plan).unwrap();
    let out = nofx(dir.path(), &["run", "r.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not allowed by the command policy"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deeply_nested_documents_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000;
    let flow = format!(
        "name: x\ntasks:\n  - {{ id: a, tool: test:echo, inputs: {{ x: {}{} }} }}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    std::fs::write(dir.path().join("deep.yaml"), &flow).unwrap();
    let json = format!(
        "{{\"name\": \"x\", \"tasks\": [{{\"id\": \"a\", \"tool\": \"test:echo\", \"inputs\": {{\"x\": {}{}}}}}]}}",
        "[".repeat(n),
        "]".repeat(n)
    );
    std::fs::write(dir.path().join("deep.json"), &json).unwrap();
    let compact = format!(
        "name: x\ntasks:\n  - id: a\n    tool: test:echo\n    inputs:\n      x:\n        {}1\n",
        "- ".repeat(n)
    );
    std::fs::write(dir.path().join("compact.yaml"), &compact).unwrap();
    for (f, line) in [("deep.yaml", 3), ("deep.json", 1), ("compact.yaml", 7)] {
        let out = nofx(dir.path(), &["validate", f]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{f}: {err}");
        assert!(err.contains("nested deeper than 64 levels"), "{f}: {err}");
        assert!(err.contains(&format!("{f}: line {line}")), "{f}: {err}");
    }
    // A fork's patch file is bounded the same way.
    std::fs::write(
        dir.path().join("patch.yaml"),
        format!("x: {}{}\n", "[".repeat(n), "]".repeat(n)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\ntasks:\n  - { id: a, tool: test:echo }\n",
    )
    .unwrap();
    let out = nofx(dir.path(), &["run", "p.yaml"]);
    let id = text(&out.stdout).trim().to_string();
    let out = nofx(
        dir.path(),
        &["runs", "fork", &id, "--at", "a", "--patch", "patch.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nested deeper than 64 levels"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [sh, -c, \"seq 1 20000\"], artifacts: [] } }\n  - { id: b, tool: test:echo, depends_on: [a] }\n").unwrap();
    for _ in 0..3 {
        assert_eq!(nofx(dir.path(), &["run", "p.yaml"]).status.code(), Some(0));
    }
    let out = nofx(dir.path(), &["runs", "ls", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["runs", "ls"],
        vec!["runs", "events", &id],
        vec!["runs", "artifacts", &id, "--json"],
        vec!["runs", "show", &id, "--json"],
    ] {
        // The reader is gone before the first byte is written.
        let child = common::nofx_cmd(dir.path())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn bad_ids_and_bad_configuration_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Nothing has run here: read commands say so and create no store.
    let out = nofx(d, &["runs", "ls"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no store at"),
        "{}",
        text(&out.stderr)
    );
    let out = nofx(d, &["--database-url", "sqlite://new.db", "runs", "ls"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.join("new.db").exists() && !d.join(".nofx").exists());
    std::fs::write(
        d.join("p.yaml"),
        "name: p\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [\"true\"] } }\n",
    )
    .unwrap();
    assert_eq!(nofx(d, &["run", "p.yaml"]).status.code(), Some(0));
    let unknown = "01a23c10-6c73-7784-8938-7a3a892945aa";
    let long = "a".repeat(10_000);
    for (args, want) in [
        (vec!["runs", "events", unknown], "no run `01a23c10"),
        (vec!["runs", "events", unknown, "-f"], "no run `01a23c10"),
        (vec!["runs", "show", "ab"], "too short"),
        (vec!["runs", "show", &long], "…` in the store"),
        (
            vec!["--data-dir", "/proc/nofx-here", "run", "p.yaml"],
            "/proc/nofx-here",
        ),
        (
            vec!["--database-url", "mysql://x", "run", "p.yaml"],
            "unsupported database URL",
        ),
        (
            vec![
                "--database-url",
                "postgres://postgres@127.0.0.1:5432/nofx_no_such_db",
                "runs",
                "ls",
            ],
            "does not exist",
        ),
    ] {
        let out = nofx(d, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.len() < 600, "{args:?}: the message is short: {err}");
    }
    let out = nofx(d, &["runs", "ls", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let out = nofx(
        d,
        &[
            "runs",
            "artifacts",
            &id,
            "stdout",
            "-o",
            d.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot write there"),
        "{}",
        text(&out.stderr)
    );
    for args in [
        vec!["runs", "ls", "--limit", "0"],
        vec!["run", "p.yaml", "-i", "k=1", "-i", "k=2"],
    ] {
        assert_eq!(nofx(d, &args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn progress_shows_each_tasks_own_time_and_says_resuming_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        "name: p\ntasks:\n  - { id: slow, tool: shell, inputs: { argv: [sleep, \"0.6\"] } }\n  - { id: quick, tool: test:echo, depends_on: [slow] }\n",
    )
    .unwrap();
    let out = nofx(d, &["run", "p.yaml"]);
    let err = text(&out.stderr);
    let secs = |task: &str| -> f64 {
        let line = err
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("ok      {task} (")))
            .unwrap_or_else(|| panic!("no line for {task}: {err}"));
        let inner = line.rsplit_once(", ").unwrap().1.trim_end_matches("s)");
        inner.parse().unwrap_or_else(|_| panic!("{line}"))
    };
    assert!(secs("slow") >= 0.6, "{err}");
    assert!(
        secs("quick") < 0.6,
        "the quick task's own time, not the run's: {err}"
    );
    let out = nofx(d, &["run", "--detach", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let out = nofx(d, &["resume"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("resuming run").count(), 1, "{err}");
}

#[test]
fn small_cli_things_are_refused_or_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.yaml"), "name: p\ntasks:\n  - { id: big, tool: shell, inputs: { argv: [sh, -c, \"head -c 70000 /dev/zero | tr '\\\\0' x\"] } }\n").unwrap();
    for (args, want) in [
        (
            vec!["--log-level", "loud", "runs", "ls"],
            "--log-level `loud`",
        ),
        (vec!["run", "--detach", "--json", "p.yaml"], "--json"),
    ] {
        let out = nofx(d, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = nofx(d, &["schema", "plan", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());
    // Output cut at 64 KiB says so; logs into a file carry no colour codes.
    let out = nofx(d, &["--log-level", "debug", "run", "--json", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outputs = &run["tasks"][0]["outputs"];
    assert_eq!(outputs["stdout"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(outputs["stdout_truncated"], true, "{outputs}");
    assert!(outputs.get("stderr_truncated").is_none());
    assert!(
        !text(&out.stderr).contains('\u{1b}'),
        "no ANSI escapes in a piped log"
    );
}

#[test]
fn the_readme_fork_patch_forks_the_shipped_example_and_bad_patches_name_their_task() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("# patch.yaml")
        .expect("the README shows patch.yaml");
    let patch = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("patch.yaml"), patch).unwrap();
    let plan = example("report.yaml");
    let out = nofx(d, &["run", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let out = nofx(
        d,
        &[
            "runs",
            "fork",
            &id,
            "--at",
            "report",
            "--patch",
            "patch.yaml",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["forkedAt"], "report");
    std::fs::write(
        d.join("bad.yaml"),
        "tasks:\n  report:\n    inputs: { argv: 5 }\n",
    )
    .unwrap();
    let out = nofx(
        d,
        &["runs", "fork", &id, "--at", "report", "--patch", "bad.yaml"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the patched plan: task `report`"), "{err}");
}

#[test]
fn templates_with_one_id_are_refused_removed_files_go_and_errors_stay_short() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = d.join("templates");
    std::fs::create_dir(&t).unwrap();
    let tpl = |id: &str| {
        format!("id: {id}\nname: T\ndescription: d\ncategory: c\nplan:\n  name: p\n  tasks:\n    - {{ id: a, tool: test:echo }}\n")
    };
    std::fs::write(t.join("a.yaml"), tpl("one")).unwrap();
    std::fs::write(t.join("b.yaml"), tpl("two")).unwrap();
    let ls = |d: &Path| -> Vec<String> {
        let out = nofx(d, &["templates", "ls", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ls(d), vec!["one", "two"]);
    // A removed file's template is no longer listed.
    std::fs::remove_file(t.join("b.yaml")).unwrap();
    assert_eq!(ls(d), vec!["one"]);
    // Two files with one id: refused, naming both.
    std::fs::write(t.join("c.yaml"), tpl("one")).unwrap();
    let out = nofx(d, &["templates", "ls"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("template id `one` is already used by"),
        "{err}"
    );
    std::fs::remove_file(t.join("c.yaml")).unwrap();
    // A plan_file that is not a plan: the message quotes its start, not the whole file.
    let long = "word ".repeat(5_000);
    std::fs::write(d.join("notes.txt"), &long).unwrap();
    std::fs::write(
        t.join("d.yaml"),
        "id: three\nname: T\ndescription: d\ncategory: c\nplan_file: ../notes.txt\n",
    )
    .unwrap();
    let out = nofx(d, &["templates", "ls"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.len() < 1_000, "{} bytes: {}", err.len(), &err[..200]);
}

#[test]
fn a_checkpoint_is_named_by_a_unique_prefix_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        "name: p\ntasks:\n  - { id: a, tool: test:echo }\n",
    )
    .unwrap();
    let id = text(&nofx(d, &["run", "p.yaml"]).stdout).trim().to_string();
    let out = nofx(d, &["checkpoints", "create", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cp = text(&out.stdout).trim().lines().last().unwrap().to_string();
    let out = nofx(
        d,
        &["checkpoints", "restore", &cp[..cp.len() - 6], "--detach"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = nofx(d, &["checkpoints", "restore", "cp-", "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("too short"),
        "{}",
        text(&out.stderr)
    );
}

/// Processes that open a new store at the same moment all get it: SQLite migrations applied
/// by one are skipped by the others instead of colliding.
#[test]
fn processes_that_create_the_store_together_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\ntasks:\n  - { id: a, tool: test:echo }\n",
    )
    .unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            common::nofx_cmd(dir.path())
                .args(["run", "p.yaml"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let ls = nofx(dir.path(), &["runs", "ls", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 8);
}
