//! The embedding examples as programs: run, killed with SIGKILL, run again.

mod common;

use common::{alive, example, find, wait_for};
use std::process::{Command, Stdio};
use std::time::Duration;

fn pids(file: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_killed_embedding_program_leaves_no_process_behind_and_its_run_resumes_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exe = example("resume");
    // A `#[tokio::main]` program whose run's first step sleeps for five minutes.
    let mut program = Command::new(&exe)
        .arg(&data)
        .arg("300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The step's shell and its `sleep` have written their pids.
    wait_for(Duration::from_secs(60), || {
        find(&data, "pids").is_some_and(|f| pids(&f).len() >= 2)
    });
    let file = find(&data, "pids").unwrap();
    let started = pids(&file);
    assert!(started.iter().all(|&p| alive(p)), "{started:?}");
    program.kill().unwrap(); // SIGKILL: no handler, no cleanup in the program.
    program.wait().unwrap();
    wait_for(Duration::from_secs(20), || {
        !started.iter().any(|&p| alive(p))
    });

    // The next life of the program resumes the run; the step runs again, once.
    let out = Command::new(&exe).arg(&data).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("resumed run"), "{stdout}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert_eq!(pids(&file).len(), 3, "one more attempt of the step");
}

#[test]
fn every_embedding_example_runs_to_success() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        // A benchmark, a soak and a load that start `nofx serve` nodes for minutes, and an MCP
        // server and a fake model provider other programs talk to (tests/mcp.rs and
        // tests/provider_chaos.rs use them), not embedding examples.
        .filter(|n| {
            !matches!(
                n.as_str(),
                "fleet_bench" | "soak" | "load" | "mcp_server" | "fake_provider"
            )
        })
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let out = Command::new(example(&name)).output().unwrap();
        assert!(
            out.status.success(),
            "example {name}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
