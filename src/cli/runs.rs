//! `nofx runs ls|show|events|transcript|cancel|artifacts`.

use super::{open_existing_store, runtime, CliResult, Failure, Global};
use crate::runtime::{Cancelled, Outcome, RunFilter, RunSummary};
use crate::store::{Blobs, Store};
use crate::RunId;
use clap::Subcommand;
use futures::StreamExt;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    Ls {
        /// Only runs with this status: pending, running, waiting, succeeded, failed,
        /// cancelled, or interrupted (unfinished runs no live process executes; `nofx
        /// resume` takes them).
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
    /// Print what a task's agents said and did: each loop's turns, tool calls with inputs
    /// and results, tokens and cost per turn.
    Transcript {
        /// Run id or unique prefix.
        run: String,
        /// The task.
        task: String,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run, wherever it executes.
    Cancel {
        /// Run id or unique prefix.
        run: String,
        /// Shown as the run's reason.
        #[arg(long, default_value = "cancelled by user")]
        reason: String,
    },
    /// Fork a run at a task: it and what depends on it run again, with the plan changed by
    /// a JSON merge patch; the parent's other results are restored.
    Fork {
        /// Run id or unique prefix.
        run: String,
        /// The task to start again at.
        #[arg(long, value_name = "TASK")]
        at: String,
        /// A JSON merge patch on the plan (JSON or YAML file); `tasks` may be an object
        /// keyed by task id.
        #[arg(long, value_name = "FILE")]
        patch: Option<PathBuf>,
        /// Input values over the parent's, NAME=VALUE (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        #[command(flatten)]
        start: super::run::StartArgs,
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

pub async fn dispatch(g: &Global, c: RunsCommand) -> CliResult {
    if let RunsCommand::Fork {
        run,
        at,
        patch,
        inputs,
        start,
    } = c
    {
        // A fork executes: it needs a runtime, not only the store.
        return fork(g, run, at, patch, inputs, start).await;
    }
    let store = open_existing_store(g).await?;
    let r = read(g, &store, c).await;
    store.close().await;
    r
}

async fn read(g: &Global, store: &Store, c: RunsCommand) -> CliResult {
    match c {
        RunsCommand::Fork {
            run,
            at,
            patch,
            inputs,
            start,
        } => fork(g, run, at, patch, inputs, start).await,
        RunsCommand::Ls {
            status,
            limit,
            json,
        } => {
            if limit < 1 {
                return Err(Failure::Input(format!(
                    "--limit must be at least 1, got {limit}"
                )));
            }
            let filter = match status {
                Some(s) => {
                    RunFilter::parse(&s).map_err(|e| Failure::Input(format!("--status {e}")))?
                }
                None => RunFilter::All,
            };
            let fetch = if filter == RunFilter::Interrupted {
                10_000
            } else {
                limit
            };
            let mut runs = Vec::new();
            for r in store.runs(&filter.statuses(), fetch).await? {
                let s = RunSummary::of(store, &r).await?;
                if filter.keeps(&s) && (runs.len() as i64) < limit {
                    runs.push(s);
                }
            }
            if json {
                // The document of `GET /runs`.
                return json_out(&serde_json::json!({"runs": runs, "nextCursor": null}));
            }
            println!(
                "{:<36}  {:<11}  {:<20}  {:>5}  {:<24}  REASON",
                "ID", "STATUS", "NAME", "TASKS", "CREATED"
            );
            for r in runs {
                let reason = if r.resumable {
                    format!("interrupted: resume with `nofx resume {}`", r.id)
                } else {
                    r.reason.unwrap_or_default()
                };
                println!(
                    "{:<36}  {:<11}  {:<20}  {:>5}  {:<24}  {reason}",
                    r.id,
                    r.status.to_string(),
                    r.name,
                    r.task_count,
                    r.created_at,
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
            if o.resumable {
                println!(
                    "  interrupted: no live process executes it; continue it with `nofx resume {}`",
                    o.id
                );
            }
            if let Some(w) = &o.owner {
                println!(
                    "  executed by: process {} on {} (lease until {})",
                    w.pid, w.host, w.lease_expires_at
                );
            }
            println!("  project: {}", o.project);
            println!("  correlation id: {}", o.correlation_id);
            println!("  created: {}", o.created_at);
            if let Some(d) = o.duration_ms {
                println!("  duration: {:.2}s", d as f64 / 1000.0);
            }
            println!("  workspace: {}", o.workspace);
            match (&o.parent_run_id, &o.checkpoint_id, &o.forked_at) {
                (Some(parent), Some(cp), Some(at)) => {
                    println!("  forked from: run {parent} at task {at} ({cp})")
                }
                (Some(parent), Some(cp), None) => {
                    println!("  restored from: run {parent}, checkpoint {cp}")
                }
                (Some(parent), None, _) => println!("  made from: run {parent}"),
                _ => {}
            }
            println!(
                "  {:<24} {:<10} {:>8}  {:<12} NOTE",
                "TASK", "STATUS", "ATTEMPTS", "AGENT"
            );
            let waits = store.waits(id).await?;
            let mut kids: HashMap<String, usize> = HashMap::new();
            for t in &o.tasks {
                if let Some(p) = &t.parent_task_id {
                    *kids.entry(p.to_string()).or_default() += 1;
                }
            }
            let mut at = 0;
            while at < o.tasks.len() {
                let t = &o.tasks[at];
                at += 1;
                let open = waits
                    .iter()
                    .rev()
                    .find(|w| w.task_id == t.id.as_str() && w.is_open())
                    .filter(|_| t.status == crate::TaskStatus::Waiting);
                let note = match (&t.restored_from, open) {
                    (Some(cp), _) => format!("restored from {cp}"),
                    (None, Some(w)) if w.kind == crate::WaitKind::Question => {
                        let asked: Vec<&str> = waits
                            .iter()
                            .filter(|o| o.task_id == w.task_id && o.is_open())
                            .filter_map(|o| o.question.as_deref().map(|q| q.spec.id.as_str()))
                            .collect();
                        format!(
                            "waiting for answers to {} (nofx answer {id} QUESTION VALUE)",
                            asked.join(", ")
                        )
                    }
                    (None, Some(w)) => format!(
                        "waiting for approval by {}{}",
                        if w.approvers.is_empty() {
                            "anyone".to_string()
                        } else {
                            w.approvers.join(", ")
                        },
                        w.deadline_at
                            .map(|d| format!(
                                " until {} (then {})",
                                crate::domain::time::rfc3339_secs(d),
                                w.on_timeout.as_str()
                            ))
                            .unwrap_or_default()
                    ),
                    (None, None) => t.error.clone().unwrap_or_default(),
                };
                task_line(t, &note);
                // A large group shows its counts by status and only the subtasks that did not
                // succeed.
                let n = kids.get(t.id.as_str()).copied().unwrap_or(0);
                if n > GROUP_ROWS {
                    let prefix = format!("{}.", t.id);
                    let end = o.tasks[at..]
                        .iter()
                        .position(|s| !s.id.as_str().starts_with(&prefix))
                        .map_or(o.tasks.len(), |p| at + p);
                    let group = &o.tasks[at..end];
                    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
                    for s in group.iter().filter(|s| s.depth == t.depth + 1) {
                        *counts.entry(s.status.to_string()).or_default() += 1;
                    }
                    let counts: Vec<String> =
                        counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                    println!(
                        "  {}{prefix}* {n} subtasks: {}",
                        "  ".repeat(t.depth as usize + 1),
                        counts.join(", ")
                    );
                    let unsettled: Vec<&crate::runtime::TaskOutcome> = group
                        .iter()
                        .filter(|s| s.status != crate::TaskStatus::Succeeded)
                        .collect();
                    for s in unsettled.iter().take(GROUP_ROWS) {
                        task_line(s, s.error.as_deref().unwrap_or_default());
                    }
                    if unsettled.len() > GROUP_ROWS {
                        println!(
                            "  {}… {} more not succeeded (`nofx runs show {} --json` lists every task)",
                            "  ".repeat(t.depth as usize + 1),
                            unsettled.len() - GROUP_ROWS,
                            o.id
                        );
                    }
                    at = end;
                }
            }
            Ok(())
        }
        RunsCommand::Transcript { run, task, json } => {
            let id = store.find_run(&run).await?;
            let record = store.run(id).await?;
            if !store.has_task(&record, &task).await? {
                return Err(Failure::Input(format!("run {id} has no task `{task}`")));
            }
            let t = store.transcript(id, &task).await?;
            if json {
                return json_out(&t);
            }
            print_transcript(&t);
            Ok(())
        }
        RunsCommand::Events { run, json, follow } => {
            let id = store.find_run(&run).await?;
            let show = |e: &crate::Event| -> CliResult {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(e).map_err(|x| Failure::Error(x.to_string()))?
                    );
                } else {
                    println!(
                        "{:>5}  {}  {:<16} {:<20} {}",
                        e.seq,
                        crate::domain::time::text(&e.at),
                        e.kind,
                        e.task_id
                            .as_ref()
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "-".into()),
                        e.data
                    );
                }
                let _ = std::io::stdout().flush();
                Ok(())
            };
            if !follow {
                let mut last = 0;
                loop {
                    let evs = store.events(id, last, 1000).await?;
                    if evs.is_empty() {
                        return Ok(());
                    }
                    for e in &evs {
                        last = e.seq;
                        show(e)?;
                    }
                }
            }
            // Another process executes the run: its events are read as they are stored.
            let events = crate::runtime::follow::run_events(store.clone(), None, id, 0);
            futures::pin_mut!(events);
            loop {
                tokio::select! {
                    e = events.next() => match e {
                        Some(e) => show(&e?)?,
                        None => return Ok(()),
                    },
                    _ = super::interrupt::requested() => return Ok(()),
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
                    // The document of `GET /runs/{id}/artifacts`.
                    return json_out(&serde_json::json!({ "artifacts": list }));
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
            let a = match crate::store::find_artifact(&list, &name) {
                Ok(a) => a,
                Err(crate::store::ArtifactLookup::Missing) => {
                    return Err(Failure::Input(format!(
                        "run {id} has no artifact `{name}` (see `nofx runs artifacts {id}`)"
                    )))
                }
                Err(crate::store::ArtifactLookup::Ambiguous(names)) => {
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
                    // Where the file goes is the caller's input: a bad place is exit 2.
                    std::fs::write(&file, &bytes).map_err(|e| {
                        Failure::Input(format!("-o {}: cannot write there: {e}", file.display()))
                    })?;
                    eprintln!("wrote {} bytes to {}", bytes.len(), file.display());
                }
                None => match std::io::stdout().write_all(&bytes) {
                    // The reader went away (`| head`): nothing more to say.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other.map_err(|e| Failure::Error(e.to_string()))?,
                },
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

fn read_patch(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("--patch {}: {e}", path.display())))?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .map_err(|e| Failure::Input(format!("--patch {}: not JSON: {e}", path.display())))?
    } else {
        crate::domain::nesting::from_yaml(&text).map_err(|e| {
            Failure::Input(format!("--patch {}: not YAML or JSON: {e}", path.display()))
        })?
    };
    if !value.is_object() {
        return Err(Failure::Input(format!(
            "--patch {}: a merge patch must be an object (keys of the plan)",
            path.display()
        )));
    }
    Ok(value)
}

async fn fork(
    g: &Global,
    run: String,
    at: String,
    patch: Option<PathBuf>,
    inputs: Vec<String>,
    start: super::run::StartArgs,
) -> CliResult {
    let patch = patch.as_deref().map(read_patch).transpose()?;
    let opts = start.options()?;
    let rt = runtime(g).await?;
    let submitted = async {
        let id = rt.store().find_run(&run).await?;
        let parent = rt.store().run(id).await?;
        // Values are typed by the patched plan's inputs when they are declared there.
        let mut pairs = Vec::new();
        for r in &inputs {
            let (k, v) = r
                .split_once('=')
                .ok_or_else(|| Failure::Input(format!("--input `{r}` must be NAME=VALUE")))?;
            pairs.push((k.trim().to_string(), v.to_string()));
        }
        let mut plan = (*parent.plan).clone();
        if let Some(p) = &patch {
            if let Some(declared) = p.get("inputs").and_then(|v| v.as_object()) {
                for (k, v) in declared {
                    match serde_json::from_value(v.clone()) {
                        Ok(spec) => {
                            plan.inputs.insert(k.clone(), spec);
                        }
                        Err(_) => {
                            plan.inputs.remove(k);
                        }
                    }
                }
            }
        }
        let typed = crate::domain::plan::inputs_from_text(&plan, &pairs)
            .map_err(|e| Failure::Input(e.to_string()))?;
        let fork = crate::runtime::Fork {
            at: at.clone(),
            patch,
            inputs: typed,
        };
        Ok::<_, Failure>(rt.fork(id, fork, opts).await)
    }
    .await;
    let submitted = match submitted {
        Ok(s) => s,
        Err(e) => {
            rt.shutdown().await;
            return Err(e);
        }
    };
    let headline = format!("fork of run {run} at task {at}");
    super::run::drive(&rt, submitted, &start, &headline).await
}

/// One line of `text`, cut to `n` characters.
fn line(text: &str, n: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= n {
        flat
    } else {
        format!("{}…", flat.chars().take(n).collect::<String>())
    }
}

fn print_transcript(t: &crate::store::Transcript) {
    if t.loops.is_empty() {
        println!(
            "task {} of run {}: no agent loop (not an `agent` task, or not started)",
            t.task_id, t.run_id
        );
        return;
    }
    for l in &t.loops {
        let r = &l.record;
        let indent = "  ".repeat(r.depth as usize);
        let status = match (&r.stop_reason, r.status) {
            (Some(s), _) => format!("finished: {s}"),
            (None, _) => "running".to_string(),
        };
        let calls: usize = l.turns.iter().map(|t| t.tool_calls.len()).sum();
        println!(
            "{indent}loop {} — agent {} (attempt {}{}), {status}, {} turn(s), {calls} tool call(s)",
            r.id,
            r.agent,
            r.attempt,
            r.parent_call
                .as_ref()
                .map(|c| format!(", asked by call {c}"))
                .unwrap_or_default(),
            l.turns.len()
        );
        if let Some(s) = &r.system {
            println!("{indent}  system: {}", line(s, 160));
        }
        println!("{indent}  prompt: {}", line(&r.prompt, 160));
        for turn in &l.turns {
            let x = &turn.turn;
            println!(
                "{indent}  turn {} · {} · in {} (cached {}) out {} · ${:.6}",
                x.turn,
                x.model,
                x.input_tokens,
                x.cache_read_tokens,
                x.output_tokens,
                x.cost_micro_usd as f64 / 1e6
            );
            if !x.text.is_empty() {
                println!("{indent}    assistant: {}", line(&x.text, 300));
            }
            for c in &turn.tool_calls {
                println!(
                    "{indent}    call {} {} {} → {}{}: {}",
                    c.call_id,
                    c.tool.as_deref().unwrap_or(&c.name),
                    line(&c.input.to_string(), 120),
                    c.status.as_str(),
                    c.duration_ms
                        .map(|d| format!(" ({d} ms)"))
                        .unwrap_or_default(),
                    line(c.result.as_deref().unwrap_or("-"), 200)
                );
            }
            if let Some(f) = &x.feedback {
                println!("{indent}    told: {}", line(f, 200));
            }
        }
        if let Some(a) = &r.answer {
            let text = match a {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{indent}  answer: {}", line(&text, 300));
        }
        if let Some(e) = &r.error {
            println!("{indent}  stopped: {}", line(e, 300));
        }
    }
}

/// Subtasks of one task listed one by one; a larger group is shown by its counts.
const GROUP_ROWS: usize = 20;

/// One task of `runs show`, indented by its depth.
fn task_line(t: &crate::runtime::TaskOutcome, note: &str) {
    let id = format!("{}{}", "  ".repeat(t.depth as usize), t.id);
    println!(
        "  {:<24} {:<10} {:>8}  {:<12} {}",
        id,
        t.status,
        t.attempts,
        t.agent.as_deref().unwrap_or("-"),
        note
    );
}
