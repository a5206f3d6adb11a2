//! `nofx run` and `nofx resume`.

use super::progress::Progress;
use super::{interrupt, plan_inputs, read_plan, runtime, CliResult, Failure, Global};
use crate::runtime::{Outcome, Resumed};
use crate::{CorrelationId, RunHandle, RunId, RunStatus, Runtime, RuntimeError, SubmitOptions};
use clap::Args;
use futures::StreamExt;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// The plan file (YAML or JSON).
    #[arg(required_unless_present = "goal", conflicts_with = "goal")]
    file: Option<PathBuf>,
    /// Decompose this goal into a plan with the planner (a model), then run it.
    #[arg(long, value_name = "TEXT")]
    goal: Option<String>,
    /// Check the plan and print it (YAML, plan inputs filled in) without running or storing
    /// anything; with --goal, the plan the planner accepted.
    #[arg(long, conflicts_with = "detach")]
    dry_run: bool,
    /// With --goal: answers the planner may ask for in all (the first plus repairs).
    #[arg(long, requires = "goal", default_value_t = 3, value_name = "N")]
    planner_rounds: u32,
    /// Plan inputs, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    #[command(flatten)]
    start: StartArgs,
}

/// How a new run (a plan, a restore, a fork) is started.
#[derive(Args)]
pub struct StartArgs {
    /// Store the new run, print its id alone on the last line of stdout and exit; `nofx
    /// resume` executes it.
    #[arg(long)]
    pub detach: bool,
    /// Print the final run as JSON on stdout (instead of the run id).
    #[arg(long, conflicts_with = "detach")]
    pub json: bool,
    /// Use this correlation id instead of a generated one.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
}

impl StartArgs {
    /// The submit options these flags ask for.
    pub fn options(&self) -> Result<SubmitOptions, Failure> {
        Ok(SubmitOptions {
            correlation: match &self.correlation_id {
                Some(c) => Some(CorrelationId::from_caller(c).map_err(Failure::Input)?),
                None => None,
            },
            detach: self.detach,
            ..SubmitOptions::default()
        })
    }
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run (id or unique prefix); without it, every unfinished run no live process owns.
    run: Option<String>,
    /// Print the final run(s) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(g: &Global, a: RunArgs) -> CliResult {
    let Some(file) = &a.file else {
        return run_goal(g, a).await;
    };
    let src = read_plan(file)?;
    let inputs = plan_inputs(&src, &a.inputs)?;
    if a.dry_run {
        return dry_run(g, &src, &inputs, a.start.json);
    }
    let opts = a.start.options()?;
    let rt = runtime(g).await?;
    let submitted = rt.submit_opts(&src, inputs, opts).await;
    let n = src.plan.tasks.len();
    let headline = format!(
        "plan `{}`, {n} task{}",
        src.plan.name,
        if n == 1 { "" } else { "s" }
    );
    drive(&rt, submitted, &a.start, &headline).await
}

/// After a submit (a plan, a restore, a fork): with `detach`, prints the stored run's id
/// alone on the last line of stdout; else follows the run to its end like `nofx run`.
pub(crate) async fn drive(
    rt: &Runtime,
    submitted: Result<RunHandle, RuntimeError>,
    start: &StartArgs,
    headline: &str,
) -> CliResult {
    let handle = match submitted {
        Ok(h) => h,
        Err(e) => {
            rt.shutdown().await;
            return Err(e.into());
        }
    };
    if start.detach {
        eprintln!(
            "stored run {} (correlation id {}); run it with `nofx resume {}`",
            handle.id(),
            handle.correlation_id(),
            handle.id()
        );
        println!("{}", handle.id());
        rt.shutdown().await;
        return Ok(());
    }
    let total = match Outcome::load(rt.store(), handle.id()).await {
        Ok(o) => o.tasks.len(),
        Err(e) => {
            rt.shutdown().await;
            return Err(e.into());
        }
    };
    eprintln!(
        "run {} started: {headline}, correlation id {}",
        handle.id(),
        handle.correlation_id()
    );
    let outcome = follow(rt, &handle, total).await;
    finish(rt, outcome, start.json).await
}

/// `nofx run --dry-run FILE`: the plan as it would run, with its inputs resolved; nothing is
/// executed and the store is not opened.
fn dry_run(
    g: &Global,
    src: &crate::domain::plan::PlanSource,
    inputs: &serde_json::Map<String, serde_json::Value>,
    json: bool,
) -> CliResult {
    let v = super::check_plan(g, src, inputs)?;
    let resolved = v.with_inputs_resolved();
    let n = v.graph.len();
    eprintln!(
        "plan `{}` is valid: {n} task{} (dry run: nothing was executed or stored)",
        v.plan.name,
        if n == 1 { "" } else { "s" }
    );
    if json {
        let doc = serde_json::json!({ "inputs": v.inputs, "plan": resolved });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        let inputs =
            serde_yaml_ng::to_string(&v.inputs).map_err(|e| Failure::Error(e.to_string()))?;
        let plan =
            serde_yaml_ng::to_string(&resolved).map_err(|e| Failure::Error(e.to_string()))?;
        println!("# inputs:");
        for line in inputs.lines() {
            println!("#   {line}");
        }
        print!("{plan}");
    }
    Ok(())
}

async fn run_goal(g: &Global, a: RunArgs) -> CliResult {
    let goal = a.goal.clone().unwrap_or_default();
    if a.start.detach || !a.inputs.is_empty() || a.start.correlation_id.is_some() {
        return Err(Failure::Input(
            "--goal runs take no --input, --detach or --correlation-id".into(),
        ));
    }
    if a.planner_rounds == 0 {
        return Err(Failure::Input("--planner-rounds must be at least 1".into()));
    }
    let options = crate::planner::PlannerOptions {
        max_rounds: a.planner_rounds,
        ..Default::default()
    };
    let rt = runtime(g).await?;
    eprintln!("planning: asking a model to decompose the goal…");
    if a.dry_run {
        let planned = rt.plan_goal(&goal, options).await;
        rt.shutdown().await;
        let planned = planned?;
        eprintln!(
            "plan accepted after {} answer(s) from {}: {} tasks (dry run: nothing was executed)",
            planned.rounds,
            planned.model,
            planned.plan.graph.len()
        );
        let yaml = serde_yaml_ng::to_string(planned.source.plan.as_ref())
            .map_err(|e| Failure::Error(e.to_string()))?;
        print!("{yaml}");
        return Ok(());
    }
    let (handle, planned) = match rt.submit_goal(&goal, options).await {
        Ok(x) => x,
        Err(e) => {
            rt.shutdown().await;
            return Err(e.into());
        }
    };
    let total = planned.source.plan.tasks.len();
    eprintln!(
        "run {} started: plan `{}` from the planner ({} answer(s), {}), {total} tasks, correlation id {}",
        handle.id(),
        planned.source.plan.name,
        planned.rounds,
        planned.model,
        handle.correlation_id()
    );
    let outcome = follow(&rt, &handle, total).await;
    finish(&rt, outcome, a.start.json).await
}

/// Shows progress until the run ends or Ctrl-C; on Ctrl-C stops the runtime (the run stays
/// resumable) and reports `Interrupted`.
pub(crate) async fn follow(
    rt: &Runtime,
    handle: &RunHandle,
    total: usize,
) -> Result<Outcome, Failure> {
    let mut progress = Progress::new(total);
    let events = handle.subscribe();
    futures::pin_mut!(events);
    let watch = async {
        while let Some(e) = events.next().await {
            progress.event(&e?);
        }
        Ok::<_, RuntimeError>(())
    };
    // Execution here can stop without the run ending (its writes could not be committed, its
    // lease could not be renewed): then nothing more comes, and following ends.
    let stopped = async {
        match handle.wait_status().await {
            Err(RuntimeError::Interrupted { .. }) => {}
            _ => std::future::pending::<()>().await,
        }
    };
    // The event stream is dropped before the runtime stops: a read of it left suspended
    // would hold a store connection that closing the store waits for.
    let interrupted = tokio::select! {
        r = watch => { r?; false }
        _ = interrupt::requested() => true,
        () = stopped => {
            rt.shutdown().await;
            return Err(Failure::Error(format!(
                "run {} stopped before it ended (the log above says why); resume it with `nofx resume {}`",
                handle.id(),
                handle.id()
            )));
        }
    };
    if interrupted {
        eprintln!("\ninterrupted: stopping tasks in flight…");
        rt.shutdown().await;
        eprintln!(
            "run {} is resumable: nofx resume {}",
            handle.id(),
            handle.id()
        );
        return Err(Failure::Interrupted);
    }
    let outcome = Outcome::load(rt.store(), handle.id()).await?;
    progress.summary(&outcome);
    Ok(outcome)
}

pub(crate) async fn finish(
    rt: &Runtime,
    outcome: Result<Outcome, Failure>,
    json: bool,
) -> CliResult {
    let outcome = match outcome {
        Ok(o) => o,
        Err(Failure::Interrupted) => return Err(Failure::Interrupted),
        Err(e) => {
            rt.shutdown().await;
            return Err(e);
        }
    };
    rt.shutdown().await;
    if outcome.status == RunStatus::Running {
        return Err(Failure::Error(format!(
            "run {} stopped before it ended; resume it with `nofx resume {}`",
            outcome.id, outcome.id
        )));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        println!("{}", outcome.id);
    }
    if outcome.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Failure::RunFailed)
    }
}

async fn resume_one(
    rt: &Runtime,
    run: RunId,
    wait_for_lease: bool,
) -> Result<Option<RunHandle>, Failure> {
    loop {
        match rt.resume(run).await {
            Ok((Resumed::Finished(status), _)) => {
                eprintln!("run {run} already ended ({status})");
                return Ok(None);
            }
            Ok((_, h)) => return Ok(Some(h)),
            Err(RuntimeError::LeaseHeld { info, .. }) if wait_for_lease => {
                eprintln!(
                    "run {run} is leased by process {} on {} until {}; waiting for it to finish or expire…",
                    info.pid,
                    info.host,
                    crate::domain::time::rfc3339_secs(info.expires_at)
                );
                let wait = (info.expires_at - crate::domain::time::now_ms()).clamp(100, 60_000);
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 50)) => {}
                    _ = interrupt::requested() => return Err(Failure::Interrupted),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn resume(g: &Global, a: ResumeArgs) -> CliResult {
    let rt = runtime(g).await?;
    let result = resume_inner(&rt, a).await;
    if !matches!(result, Err(Failure::Interrupted)) {
        rt.shutdown().await;
    }
    result
}

async fn resume_inner(rt: &Runtime, a: ResumeArgs) -> CliResult {
    if let Some(prefix) = a.run {
        let run = rt.store().find_run(&prefix).await?;
        let Some(handle) = resume_one(rt, run, true).await? else {
            let o = Outcome::load(rt.store(), run).await?;
            return report(vec![o], a.json);
        };
        // The plan says how many tasks there are: a pending task may have no row yet.
        let r = rt.store().run(run).await?;
        eprintln!("resuming run {run} (plan `{}`)", r.name);
        let outcome = follow(rt, &handle, r.plan.tasks.len()).await?;
        return report(vec![outcome], a.json);
    }
    let mut handles = Vec::new();
    for r in rt.resume_all().await? {
        match r.result {
            Ok((Resumed::Finished(_), _)) => {}
            Ok((_, h)) => {
                eprintln!("resuming run {} (plan `{}`)", r.run, r.name);
                handles.push((h, r.tasks));
            }
            Err(RuntimeError::LeaseHeld { info, .. }) => {
                eprintln!(
                    "skipping run {}: executed by process {} on {}",
                    r.run, info.pid, info.host
                );
            }
            Err(e) => eprintln!("skipping run {}: {e}", r.run),
        }
    }
    if handles.is_empty() {
        eprintln!("nothing to resume");
        return Ok(());
    }
    let mut outcomes = Vec::new();
    for (h, total) in handles {
        outcomes.push(follow(rt, &h, total).await?);
    }
    report(outcomes, a.json)
}

fn report(outcomes: Vec<Outcome>, json: bool) -> CliResult {
    let all_ok = outcomes.iter().all(|o| o.status == RunStatus::Succeeded);
    if json {
        let v = if outcomes.len() == 1 {
            serde_json::to_value(&outcomes[0])
        } else {
            serde_json::to_value(&outcomes)
        }
        .map_err(|e| Failure::Error(e.to_string()))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        for o in &outcomes {
            println!("{}", o.id);
        }
    }
    if all_ok {
        Ok(())
    } else {
        Err(Failure::RunFailed)
    }
}
