//! `nofx prp validate|run|report`: PRPs checked (every problem at its key path, exit 2),
//! executed step by step behind gates with rollback, and reported.

use super::run::StartArgs;
use super::setup::builder;
use super::{runtime, CliResult, Failure, Global};
use crate::domain::prp::{PrpErrors, RollbackPolicy};
use crate::runtime::{read_prp, PrpFrom, PrpReport, PrpRun, GENERATE_TASK};
use crate::tools::CommandPolicy;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PrpCommand {
    /// Check a PRP as `nofx prp run` would (tools, gates, commands, files its context
    /// names), every problem at its key path; exit 2 on problems.
    Validate(ValidateArgs),
    /// Have a model write a PRP from a gathering run (`nofx gather`) or an INITIAL file;
    /// its problems go back for repair; the PRP carries the model's confidence.
    Generate(GenerateArgs),
    /// Run a PRP: preconditions, each step behind its gates (retried with what the gate
    /// said), postconditions; a failed step is rolled back.
    Run(RunArgs),
    /// A PRP run step by step: status, attempts, gates, rollback, tokens, cost, files.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct ValidateArgs {
    /// The PRP (YAML or JSON).
    file: PathBuf,
    /// The directory it will work on (where the files its context names must be).
    /// Default: the current directory.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Problems as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_run", "initial"])))]
pub struct GenerateArgs {
    /// A gathering run (id or unique prefix): its answers and `repo:analyze` outputs.
    #[arg(long, value_name = "GATHER_RUN")]
    from_run: Option<String>,
    /// An INITIAL file: FEATURE, EXAMPLES, DOCUMENTATION, OTHER CONSIDERATIONS.
    #[arg(long, value_name = "FILE")]
    initial: Option<PathBuf>,
    /// Where the PRP is written (YAML, or JSON for a `.json` name); default: stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// The project the PRP is about (files the requirements name are shown to the model).
    /// Default: the current directory (with --from-run: the gathering run's directory).
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    /// The PRP (YAML or JSON).
    file: PathBuf,
    /// The directory it works on: copied into the run's workspace (what git ignores and
    /// `.git` are not), unless --in-place. Default: the current directory.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Work on the directory itself; its git tree must be clean.
    #[arg(long)]
    in_place: bool,
    /// What a failed step undoes: `step` (that step), `all` (every step, last first) or
    /// `none`.
    #[arg(long, default_value = "step", value_parser = RollbackPolicy::parse)]
    rollback: RollbackPolicy,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The run (id or unique prefix).
    run: String,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn dispatch(g: &Global, c: PrpCommand) -> CliResult {
    match c {
        PrpCommand::Validate(a) => validate(g, a),
        PrpCommand::Generate(a) => generate(g, a).await,
        PrpCommand::Run(a) => run(g, a).await,
        PrpCommand::Report(a) => report(g, a).await,
    }
}

fn problems(e: PrpErrors, json: bool) -> Failure {
    if json {
        println!(
            "{}",
            serde_json::json!({"valid": false, "problems": e.problems})
        );
    }
    Failure::Input(e.to_string())
}

fn base(path: &Option<PathBuf>) -> Result<PathBuf, Failure> {
    match path {
        Some(p) if p.is_dir() => Ok(p.clone()),
        Some(p) => Err(Failure::Input(format!(
            "{} is not a directory",
            p.display()
        ))),
        None => std::env::current_dir().map_err(|e| Failure::Input(e.to_string())),
    }
}

fn validate(g: &Global, a: ValidateArgs) -> CliResult {
    let src = read_prp(&a.file).map_err(|e| problems(e, a.json))?;
    let dir = base(&a.path)?;
    let plan = match builder(g, CommandPolicy::allow_all())?.check_prp(
        &src,
        Some(&dir),
        RollbackPolicy::Step,
    ) {
        Ok(p) => p,
        Err(crate::RuntimeError::BadPrp(e)) => return Err(problems(e, a.json)),
        Err(other) => return Err(other.into()),
    };
    let steps = plan.tasks.len() - 3;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"valid": true, "name": src.prp.name, "steps": steps, "problems": []})
        );
    } else {
        println!(
            "ok: PRP `{}`: {steps} step(s), {} precondition(s), {} postcondition(s)",
            src.prp.name,
            src.prp.preconditions.len(),
            src.prp.postconditions.len()
        );
    }
    Ok(())
}

async fn generate(g: &Global, a: GenerateArgs) -> CliResult {
    let rt = runtime(g).await?;
    let result = generate_with(&rt, &a).await;
    rt.shutdown().await;
    result
}

async fn generate_with(rt: &crate::Runtime, a: &GenerateArgs) -> CliResult {
    let (from, dir) = match (&a.from_run, &a.initial) {
        (Some(r), _) => {
            let run = rt.store().find_run(r).await?;
            (PrpFrom::Gathering(run), a.path.clone())
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
            (PrpFrom::Initial(text), Some(base(&a.path)?))
        }
        (None, None) => return Err(Failure::Input("give --from-run or --initial".into())),
    };
    let handle = rt.generate_prp(from, dir, Default::default()).await?;
    eprintln!("generating a PRP: run {}", handle.id());
    let outcome = super::run::follow(rt, &handle, 1).await?;
    let task = outcome
        .tasks
        .iter()
        .find(|t| t.id.as_str() == GENERATE_TASK);
    let made = task
        .filter(|t| t.status == crate::TaskStatus::Succeeded)
        .and_then(|t| t.outputs.clone());
    // The progress already said why the run did not succeed.
    let Some(made) = made else {
        return Err(Failure::RunFailed);
    };
    let prp: crate::domain::prp::Prp = serde_json::from_value(made["prp"].clone())
        .map_err(|e| Failure::Error(format!("the generated PRP does not read back: {e}")))?;
    let row = rt
        .store_prp(&prp, &outcome.project, Some(outcome.id))
        .await?;
    let json_out = a
        .output
        .as_ref()
        .is_some_and(|o| o.extension().is_some_and(|e| e == "json"));
    let text = if json_out {
        serde_json::to_string_pretty(&prp).map_err(|e| Failure::Error(e.to_string()))?
    } else {
        serde_yaml_ng::to_string(&prp).map_err(|e| Failure::Error(e.to_string()))?
    };
    match &a.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::Error(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    let confidence = prp
        .confidence
        .as_ref()
        .map(|c| format!("{}/10 ({})", c.score, c.reason))
        .unwrap_or_default();
    eprintln!(
        "PRP `{}` ({} step(s)) {}; stored as {}; confidence {confidence}; {} answer(s) from the model",
        prp.name,
        prp.implementation.steps.len(),
        match &a.output {
            Some(p) => format!("written to {}", p.display()),
            None => "printed above".into(),
        },
        row.id,
        made["rounds"]
    );
    Ok(())
}

async fn run(g: &Global, a: RunArgs) -> CliResult {
    let src = read_prp(&a.file).map_err(|e| problems(e, false))?;
    let rt = runtime(g).await?;
    let how = PrpRun {
        path: Some(base(&a.path)?),
        in_place: a.in_place,
        rollback: a.rollback,
        submit: a.start.options()?,
    };
    let submitted = rt.submit_prp(&src, how).await;
    let headline = format!(
        "PRP `{}` ({} step(s), rollback {})",
        src.prp.name,
        src.prp.implementation.steps.len(),
        a.rollback.as_str()
    );
    super::run::drive(&rt, submitted, &a.start, &headline).await
}

async fn report(g: &Global, a: ReportArgs) -> CliResult {
    let store = super::open_store(g).await?;
    let run = store.find_run(&a.run).await?;
    let r = crate::runtime::prp_report_of(&store, run).await;
    store.close().await;
    let r = r?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| Failure::Error(e.to_string()))?
        );
    } else {
        print!("{}", text(&r));
    }
    Ok(())
}

fn files(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else { return String::new() };
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    format!(
        ", files +{} ~{} -{}",
        n("added"),
        n("modified"),
        n("deleted")
    )
}

/// The report as text.
fn text(r: &PrpReport) -> String {
    let mut out = format!(
        "PRP `{}` run {}: {}{}\nrollback: {}\n",
        r.name,
        r.run_id,
        r.status,
        r.reason
            .as_deref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default(),
        r.rollback.as_str().unwrap_or("?")
    );
    let all = std::iter::once(&r.preconditions)
        .chain(&r.steps)
        .chain(std::iter::once(&r.postconditions));
    for s in all {
        out.push_str(&format!(
            "  {:<14} {:<9} attempts {}{}{}{}{}\n",
            s.id,
            s.status.as_str(),
            s.attempts,
            s.duration_ms
                .map(|d| format!(", {d} ms"))
                .unwrap_or_default(),
            if s.input_tokens + s.output_tokens > 0 {
                format!(
                    ", {} tokens, ${:.4}",
                    s.input_tokens + s.output_tokens,
                    s.cost_usd
                )
            } else {
                String::new()
            },
            files(&s.files),
            if s.rolled_back { ", rolled back" } else { "" }
        ));
        for gate in &s.gates {
            out.push_str(&format!(
                "      gate #{} {} (attempt {}): {} {}\n",
                gate.gate,
                gate.kind,
                gate.attempt,
                if gate.passed { "passed" } else { "FAILED" },
                gate.reason
            ));
        }
    }
    if !r.success_criteria.is_empty() {
        out.push_str("success criteria:\n");
        for c in &r.success_criteria {
            out.push_str(&format!("  - {c}\n"));
        }
    }
    let t = &r.totals;
    out.push_str(&format!(
        "totals: {} step(s), {} succeeded, {} failed, {} rolled back, {} attempt(s), {} tokens, ${:.4}, files +{} ~{} -{}\n",
        t["steps"], t["succeeded"], t["failed"], t["rolledBack"], t["attempts"],
        t["inputTokens"].as_i64().unwrap_or(0) + t["outputTokens"].as_i64().unwrap_or(0),
        t["costUsd"].as_f64().unwrap_or(0.0),
        t["filesAdded"], t["filesModified"], t["filesDeleted"]
    ));
    let c = &r.confidence;
    out.push_str(&match c["predicted"]["score"].as_u64() {
        Some(score) => format!(
            "confidence: predicted {score}/10 ({}); outcome: {}\n",
            c["predicted"]["reason"].as_str().unwrap_or_default(),
            c["outcome"].as_str().unwrap_or_default()
        ),
        None => format!(
            "confidence: none predicted; outcome: {}\n",
            c["outcome"].as_str().unwrap_or_default()
        ),
    });
    out
}
