//! `nofx runs ls|show|events|cancel|artifacts`.

use super::{open_store, runtime, CliResult, Failure, Global};
use clap::Subcommand;
use nofx::runtime::{Cancelled, Outcome};
use nofx::store::{Blobs, Store};
use nofx::{RunId, RunStatus};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    Ls {
        /// Only runs with this status.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show a run and its tasks.
    Show {
        /// Run id or unique prefix.
        run: String,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a run's events.
    Events {
        /// Run id or unique prefix.
        run: String,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
        /// Keep printing new events until the run ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Cancel a run, wherever it executes.
    Cancel {
        /// Run id or unique prefix.
        run: String,
        /// Shown as the run's reason.
        #[arg(long, default_value = "cancelled by user")]
        reason: String,
    },
    /// List a run's artifacts, or write one out.
    Artifacts {
        /// Run id or unique prefix.
        run: String,
        /// An artifact: NAME, or TASK/NAME when several tasks have one of that name.
        name: Option<String>,
        /// Write it to this file instead of stdout (`-`: stdout).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// One JSON document on stdout (listing).
        #[arg(long)]
        json: bool,
    },
}

fn json_out<T: serde::Serialize>(v: &T) -> CliResult {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| Failure::Error(e.to_string()))?
    );
    Ok(())
}

fn ms(t: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub async fn dispatch(g: &Global, c: RunsCommand) -> CliResult {
    let store = open_store(g).await?;
    let r = read(g, &store, c).await;
    store.close().await;
    r
}

async fn read(g: &Global, store: &Store, c: RunsCommand) -> CliResult {
    match c {
        RunsCommand::Ls {
            status,
            limit,
            json,
        } => {
            let statuses =
                match status {
                    Some(s) => vec![RunStatus::parse(&s)
                        .map_err(|e| Failure::Input(format!("--status: {e}")))?],
                    None => vec![],
                };
            let runs = store.runs(&statuses, limit.max(1)).await?;
            if json {
                let list: Vec<_> = runs
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "name": r.name, "status": r.status, "reason": r.reason,
                            "correlationId": r.correlation_id, "tasks": r.plan.tasks.len(),
                            "createdAt": ms(r.created_at),
                            "durationMs": r.started_at.zip(r.finished_at).map(|(s, f)| f - s),
                        })
                    })
                    .collect();
                return json_out(&list);
            }
            println!(
                "{:<36}  {:<10}  {:<20}  {:>5}  {:<20}  REASON",
                "ID", "STATUS", "NAME", "TASKS", "CREATED"
            );
            for r in runs {
                println!(
                    "{:<36}  {:<10}  {:<20}  {:>5}  {:<20}  {}",
                    r.id,
                    r.status,
                    r.name,
                    r.plan.tasks.len(),
                    ms(r.created_at),
                    r.reason.unwrap_or_default()
                );
            }
            Ok(())
        }
        RunsCommand::Show { run, json } => {
            let id = store.find_run(&run).await?;
            let o = Outcome::load(store, id).await?;
            if json {
                return json_out(&o);
            }
            println!("run {} ({})", o.id, o.name);
            println!(
                "  status: {}{}",
                o.status,
                o.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            println!("  correlation id: {}", o.correlation_id);
            println!("  created: {}", o.created_at);
            if let Some(d) = o.duration_ms {
                println!("  duration: {:.2}s", d as f64 / 1000.0);
            }
            println!("  workspace: {}", o.workspace);
            println!(
                "  {:<24} {:<10} {:>8}  {:<12} ERROR",
                "TASK", "STATUS", "ATTEMPTS", "AGENT"
            );
            for t in o.tasks {
                println!(
                    "  {:<24} {:<10} {:>8}  {:<12} {}",
                    t.id.to_string(),
                    t.status,
                    t.attempts,
                    t.agent.unwrap_or_else(|| "-".into()),
                    t.error.unwrap_or_default()
                );
            }
            Ok(())
        }
        RunsCommand::Events { run, json, follow } => {
            let id = store.find_run(&run).await?;
            let mut last = 0;
            loop {
                let evs = store.events(id, last, 1000).await?;
                let mut ended = false;
                for e in &evs {
                    last = e.seq;
                    ended |= e.kind.is_terminal();
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string(e).map_err(|x| Failure::Error(x.to_string()))?
                        );
                    } else {
                        println!(
                            "{:>5}  {}  {:<16} {:<20} {}",
                            e.seq,
                            e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            e.kind,
                            e.task_id
                                .as_ref()
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".into()),
                            e.data
                        );
                    }
                }
                let _ = std::io::stdout().flush();
                if !follow || ended {
                    return Ok(());
                }
                if evs.is_empty() {
                    if store.run(id).await?.status.is_terminal() {
                        return Ok(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = tokio::signal::ctrl_c() => return Ok(()),
                    }
                }
            }
        }
        RunsCommand::Artifacts {
            run,
            name,
            output,
            json,
        } => {
            let id = store.find_run(&run).await?;
            let list = store.artifacts(id).await?;
            let Some(name) = name else {
                if json {
                    return json_out(&list);
                }
                println!("{:<24} {:<24} {:>10}  SHA256", "TASK", "NAME", "BYTES");
                for a in list {
                    println!(
                        "{:<24} {:<24} {:>10}  {}",
                        a.task_id.to_string(),
                        a.name,
                        a.size,
                        a.hash
                    );
                }
                return Ok(());
            };
            let a = match nofx::store::find_artifact(&list, &name) {
                Ok(a) => a,
                Err(nofx::store::ArtifactLookup::Missing) => {
                    return Err(Failure::Input(format!(
                        "run {id} has no artifact `{name}` (see `nofx runs artifacts {id}`)"
                    )))
                }
                Err(nofx::store::ArtifactLookup::Ambiguous(names)) => {
                    return Err(Failure::Input(format!(
                        "artifact `{name}` is ambiguous; use one of: {}",
                        names.join(", ")
                    )));
                }
            };
            let blobs = Blobs::new(g.data_dir.join("artifacts"));
            let path = blobs.path_of(&a.hash);
            let bytes = std::fs::read(&path).map_err(|e| {
                Failure::Error(format!(
                    "artifact `{name}` ({}) cannot be read from {}: {e}",
                    a.hash,
                    path.display()
                ))
            })?;
            match output.filter(|f| f.as_os_str() != "-") {
                Some(file) => {
                    std::fs::write(&file, &bytes).map_err(|e| {
                        Failure::Error(format!("cannot write {}: {e}", file.display()))
                    })?;
                    eprintln!("wrote {} bytes to {}", bytes.len(), file.display());
                }
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| Failure::Error(e.to_string()))?,
            }
            Ok(())
        }
        // Cancelling may execute the run's end here: it needs a runtime, not just the store.
        RunsCommand::Cancel { run, reason } => cancel(g, &run, &reason).await,
    }
}

async fn cancel(g: &Global, run: &str, reason: &str) -> CliResult {
    let rt = runtime(g).await?;
    let result = async {
        let id: RunId = rt.store().find_run(run).await?;
        match rt.cancel(id, reason).await? {
            Cancelled::Finished(status) => {
                eprintln!("run {id} already ended ({status})");
                return Ok(());
            }
            Cancelled::Requested(info) => {
                eprintln!(
                    "asked process {} on {} to cancel run {id}; waiting…",
                    info.pid, info.host
                );
            }
            Cancelled::Stopping => {}
        }
        for _ in 0..300 {
            let r = rt.store().run(id).await?;
            if r.status.is_terminal() {
                eprintln!(
                    "run {id} {}{}",
                    r.status,
                    r.reason.map(|x| format!(": {x}")).unwrap_or_default()
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Failure::Error(format!(
            "run {id} did not stop within 30s; its owner may be busy — check `nofx runs show {id}`"
        )))
    }
    .await;
    rt.shutdown().await;
    result
}
