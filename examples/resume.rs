//! Restart and resume: a run outlives the program that started it.
//!
//! A plan's first step is slow (a `shell` command that sleeps); the program stops while it
//! runs, a new runtime on the same data directory finds the run unfinished, resumes it, and
//! the slow step runs again (as attempt 2) before the rest of the plan follows. Nothing that
//! finished runs twice, and no process of the stopped program's step keeps running.
//!
//!     cargo run --example resume
//!
//! With a data directory, the program is one life of a longer story: it resumes the runs a
//! killed program left behind, or, when there are none, starts one (its slow step sleeping
//! `SECONDS`, 1 by default) and waits for it. Kill it with SIGKILL while the step sleeps and
//! start it again:
//!
//!     cargo run --example resume -- /tmp/nofx-resume 300 &   # kill -9 it mid-step
//!     cargo run --example resume -- /tmp/nofx-resume         # resumes and finishes the run

use futures::StreamExt;
use nofx::plan::{Format, PlanSource};
use nofx::{EventType, RunHandle, RunStatus, Runtime};
use serde_json::{json, Map};
use std::path::{Path, PathBuf};

/// The slow step records the pid of its shell and of its `sleep` in `pids` (in the run's
/// workspace) and, on a later attempt, finishes at once: like a download that picks up where
/// it stopped.
const PLAN: &str = r#"
name: resumable
inputs:
  seconds: { type: string, default: "1" }
tasks:
  - id: fetch
    tool: shell
    inputs:
      argv:
        - sh
        - -c
        - |
          echo "$$" >> pids
          if [ -e started ]; then echo "picked up"; exit 0; fi
          touch started
          sleep "$0" & echo "$!" >> pids; wait "$!"
          echo fetched
        - "${inputs.seconds}"
  - id: report
    tool: test:echo
    depends_on: [fetch]
    inputs: { fetched: "${tasks.fetch.outputs.stdout}" }
"#;

async fn runtime(data: &Path) -> Result<Runtime, nofx::RuntimeError> {
    Runtime::builder().data_dir(data).build().await
}

/// Waits for a run to end, printing its task events.
async fn finish(run: &RunHandle) -> Result<RunStatus, Box<dyn std::error::Error>> {
    let mut events = Box::pin(run.subscribe());
    while let Some(event) = events.next().await {
        let e = event?;
        if let Some(task) = e.task_id {
            println!("  {:<16} {task}", e.kind);
        }
    }
    let outcome = run.wait().await?;
    println!("run {} {}", run.id(), outcome.status);
    Ok(outcome.status)
}

/// One life of the program on `data`: resume what a killed life left, or start a run.
async fn life(data: &Path, seconds: f64) -> Result<RunStatus, Box<dyn std::error::Error>> {
    let rt = runtime(data).await?;
    let report = rt.resume_orphans().await?;
    for (run, why) in &report.not_resumed {
        eprintln!("run {run} not resumed: {why}");
    }
    let status = if let Some(&id) = report.resumed.first() {
        println!("resumed run {id}");
        finish(&rt.run(id).await?).await?
    } else {
        let plan = PlanSource::parse(PLAN, Format::Yaml, Some("resume example"))?;
        let mut inputs = Map::new();
        inputs.insert("seconds".into(), json!(seconds.to_string()));
        let run = rt.submit(&plan, inputs).await?;
        println!("started run {}", run.id());
        finish(&run).await?
    };
    rt.shutdown().await;
    Ok(status)
}

/// The whole story in one process: start, stop mid-step, restart, resume.
async fn story(data: &Path) -> Result<RunStatus, Box<dyn std::error::Error>> {
    let first = runtime(data).await?;
    let plan = PlanSource::parse(PLAN, Format::Yaml, Some("resume example"))?;
    let mut inputs = Map::new();
    inputs.insert("seconds".into(), json!("30"));
    let run = first.submit(&plan, inputs).await?;
    println!("started run {}", run.id());
    let mut events = Box::pin(run.subscribe());
    while let Some(event) = events.next().await {
        if event?.kind == EventType::TaskStarted {
            break;
        }
    }
    // Stopping interrupts the run: it stays unfinished in the store, and the step's
    // processes are killed.
    first.shutdown().await;
    match run.wait().await {
        Err(e @ nofx::RuntimeError::Interrupted { .. }) => println!("{e}"),
        other => return Err(format!("expected an interrupted run, got {other:?}").into()),
    }

    let second = runtime(data).await?;
    let report = second.resume_orphans().await?;
    println!("resumed {:?}", report.resumed);
    let status = finish(&second.run(run.id()).await?).await?;
    second.shutdown().await;
    Ok(status)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let status = match args.next().map(PathBuf::from) {
        Some(data) => {
            let seconds = args.next().map_or(Ok(1.0), |s| s.parse::<f64>())?;
            life(&data, seconds).await?
        }
        None => {
            let data = std::env::temp_dir().join(format!("nofx-resume-{}", std::process::id()));
            let status = story(&data).await;
            let _ = std::fs::remove_dir_all(&data);
            status?
        }
    };
    if status != RunStatus::Succeeded {
        return Err(format!("the run ended {status}").into());
    }
    Ok(())
}
