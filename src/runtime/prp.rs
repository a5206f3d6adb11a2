//! PRPs on a runtime: the whole check (the document's own problems, then what each step runs
//! checked as a plan against this runtime's tools, agents, command policy and models, every
//! problem at its key path) and runs that execute one: in a copy of a directory, or in the
//! directory itself when its git tree is clean.

use super::check::check_plan;
use super::workspace::workspace_of;
use super::{RunHandle, Runtime, RuntimeError, SubmitOptions};
use crate::domain::plan::{Plan, PlanSource};
use crate::domain::prp::{
    PrpErrors, PrpSource, RollbackPolicy, POST_TASK, PRE_TASK, ROLLBACK_TASK,
};
use crate::domain::{AgentSpec, RunId};
use crate::domain::{EventType, RunStatus, TaskStatus};
use crate::models::Models;
use crate::snapshot::{self, Skip};
use crate::tools::{CommandPolicy, ToolRegistry};
use serde::Serialize;
use serde_json::Map;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a PRP runs.
#[derive(Debug, Clone, Default)]
pub struct PrpRun {
    /// The directory the PRP works on (copied, unless `in_place`); without one, a new empty
    /// workspace.
    pub path: Option<PathBuf>,
    /// Work on the directory itself (its git tree must be clean) instead of a copy.
    pub in_place: bool,
    /// What is undone when a step fails.
    pub rollback: RollbackPolicy,
    /// As for any run (`workspace` and `id` are set here).
    pub submit: SubmitOptions,
}

/// Checks a PRP whole against a runtime's tools, agents, command policy and models, for the
/// directory it will work on (`base`: the files its context names must be there; without
/// one they are checked when it runs): every problem at its key path. Returns the plan of a
/// run of it under `policy`.
pub(crate) fn check_prp(
    src: &PrpSource,
    base: Option<&Path>,
    policy: RollbackPolicy,
    tools: &ToolRegistry,
    agents: &[AgentSpec],
    commands: &CommandPolicy,
    models: &Models,
) -> Result<Plan, PrpErrors> {
    let prp = &src.prp;
    // What each step runs is checked as this runtime would run it.
    let exists = |rel: &str| match base {
        Some(b) => crate::tools::prp::file_inside(b, rel),
        None => Ok(()),
    };
    let found = prp.all_problems(&exists, |plan| {
        check_plan(plan, &Map::new(), tools, agents, commands, models).map(|_| ())
    });
    if !found.is_empty() {
        return Err(src.errors(found));
    }
    let plan = prp.compile(policy);
    // The compiled plan uses nofx's own tools; a problem here is nofx's.
    check_plan(
        &PlanSource::from_plan(plan.clone()),
        &Map::new(),
        tools,
        agents,
        commands,
        models,
    )
    .map_err(|e| {
        PrpErrors::one(
            src.origin.as_deref(),
            "",
            format!("the PRP's run plan is invalid: {e}"),
        )
    })?;
    Ok(plan)
}

impl Runtime {
    /// Checks a PRP whole against this runtime, for the directory it will work on (`base`:
    /// the files its context names must be there; without one they are not checked):
    /// every problem at its key path. Returns the plan of a run of it under `policy`.
    ///
    /// # Errors
    /// Every problem found.
    pub fn check_prp(
        &self,
        src: &PrpSource,
        base: Option<&Path>,
        policy: RollbackPolicy,
    ) -> Result<Plan, PrpErrors> {
        let s = &self.inner.shared;
        check_prp(src, base, policy, &s.tools, &s.agents, &s.policy, &s.models)
    }

    /// Checks a PRP and starts a run of it: in a copy of `how.path` (what git ignores, `.git`
    /// and the data directory are not copied) or, with `in_place`, in the directory itself,
    /// whose git tree must be clean (so what the run changes is all there is to see, and
    /// `git` can undo it too).
    ///
    /// # Errors
    /// The PRP's problems; a directory that cannot be read or copied; `in_place` outside a
    /// clean git tree; the errors of [`Runtime::submit_opts`].
    pub async fn submit_prp(
        &self,
        src: &PrpSource,
        how: PrpRun,
    ) -> Result<RunHandle, RuntimeError> {
        let bad =
            |msg: String| RuntimeError::BadPrp(PrpErrors::one(src.origin.as_deref(), "", msg));
        if let Some(p) = &how.path {
            if !p.is_dir() {
                return Err(bad(format!("{} is not a directory", p.display())));
            }
        } else if how.in_place {
            return Err(bad("--in-place needs the directory to work on".into()));
        }
        let plan = self
            .check_prp(src, how.path.as_deref(), how.rollback)
            .map_err(RuntimeError::BadPrp)?;
        let mut opts = how.submit;
        let id = opts.id.unwrap_or_default();
        opts.id = Some(id);
        let io = |path: &Path, e: String| RuntimeError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        };
        let copied = match &how.path {
            Some(base) if how.in_place => {
                clean_git_tree(base).await?;
                opts.workspace =
                    Some(std::fs::canonicalize(base).map_err(|e| io(base, e.to_string()))?);
                None
            }
            Some(base) => {
                let to = workspace_of(self.data_dir(), id);
                let skip = Skip::dirs([self.data_dir().to_path_buf()]);
                snapshot::copy_tree(base, &to, &skip)
                    .await
                    .map_err(|e| io(base, e.to_string()))?;
                Some(to)
            }
            None => None,
        };
        let submitted = self.submit_opts(plan, Map::new(), opts).await;
        if submitted.is_err() {
            if let Some(dir) = copied {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
        }
        submitted
    }
}

/// Refuses a directory that is not in a git work tree, or whose tree has changes.
async fn clean_git_tree(dir: &Path) -> Result<(), RuntimeError> {
    let refuse = |why: String| {
        RuntimeError::BadPrp(PrpErrors::one(
            None,
            "",
            format!("--in-place needs a clean git tree: {why}"),
        ))
    };
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=normal"])
        .output()
        .await
        .map_err(|e| refuse(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(refuse(format!(
            "{} is not in a git work tree ({})",
            dir.display(),
            err.trim()
        )));
    }
    let changes = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = changes.lines().take(5).collect();
    if !listed.is_empty() {
        return Err(refuse(format!(
            "{} has uncommitted changes ({}{}); commit or stash them first",
            dir.display(),
            listed.join(", "),
            if changes.lines().count() > 5 {
                ", …"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Reads a PRP file (YAML or JSON by its extension).
///
/// # Errors
/// A file that cannot be read; the PRP's syntax and shape.
pub fn read_prp(path: &Path) -> Result<PrpSource, PrpErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| PrpErrors::one(Some(&origin), "", format!("cannot read: {e}")))?;
    let format = crate::domain::plan::Format::for_path(&origin);
    PrpSource::parse(&text, format, Some(&origin))
}

/// One gate's verdict in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    /// Its number in the task's list (from 1).
    pub gate: usize,
    /// Its kind.
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// The verdict in words.
    pub reason: String,
    /// The end of a command's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// The attempt it checked.
    pub attempt: u32,
}

/// One step (or condition) of a PRP run, in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// The step (or `preconditions` / `postconditions`).
    pub id: String,
    /// Its status.
    pub status: TaskStatus,
    /// Attempts made.
    pub attempts: i64,
    /// From its first start to its end, in ms.
    pub duration_ms: Option<i64>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// The verdicts of its gates, every attempt's, in order.
    pub gates: Vec<GateReport>,
    /// Whether it was rolled back.
    pub rolled_back: bool,
    /// How: cause, command and its result, whether the snapshot was put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Value>,
    /// Model tokens in and out.
    pub input_tokens: i64,
    /// Model tokens out.
    pub output_tokens: i64,
    /// Model cost.
    pub cost_usd: f64,
    /// Files it changed: `{added, modified, deleted}`, each `[{path, size}]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Value>,
}

/// A PRP run, step by step: `nofx prp report`, `GET /runs/{id}/report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrpReport {
    /// The run.
    pub run_id: RunId,
    /// The PRP's name.
    pub name: String,
    /// The run's status.
    pub status: RunStatus,
    /// Why it failed.
    pub reason: Option<String>,
    /// The rollback policy it ran with.
    pub rollback: Value,
    /// The preconditions' check.
    pub preconditions: StepReport,
    /// Every step, in the order they ran.
    pub steps: Vec<StepReport>,
    /// The postconditions' check.
    pub postconditions: StepReport,
    /// What done means, and whether the postconditions held.
    pub success_criteria: Vec<String>,
    /// Sums over the steps.
    pub totals: Value,
    /// The confidence the PRP predicted, and what happened.
    pub confidence: Value,
}

impl Runtime {
    /// The report of a PRP's run: each step's status, attempts, duration, gates (with the
    /// end of a command's output), rollback, tokens, cost and files changed; totals; the
    /// confidence predicted beside the outcome.
    ///
    /// # Errors
    /// Unknown run; a run that is not a PRP's (`BadPrp`); store failures.
    pub async fn prp_report(&self, run: RunId) -> Result<PrpReport, RuntimeError> {
        prp_report_of(self.store(), run).await
    }
}

/// See [`Runtime::prp_report`] (from a store alone).
///
/// # Errors
/// As [`Runtime::prp_report`].
pub async fn prp_report_of(
    store: &crate::store::Store,
    run: RunId,
) -> Result<PrpReport, RuntimeError> {
    let record = store.run(run).await?;
    let plan = &record.plan;
    let Some(rb) = plan
        .tasks
        .iter()
        .find(|t| t.id == ROLLBACK_TASK && t.tool == crate::domain::prp::ROLLBACK_TOOL)
    else {
        return Err(RuntimeError::BadPrp(PrpErrors::one(
            None,
            "",
            format!("run {run} is not a PRP's run"),
        )));
    };
    let tasks: HashMap<String, crate::store::TaskRow> = store
        .tasks(run)
        .await?
        .into_iter()
        .map(|t| (t.task_id.to_string(), t))
        .collect();
    let snaps: HashMap<String, crate::store::SnapshotRow> = store
        .snapshots(run)
        .await?
        .into_iter()
        .map(|s| (s.task_id.clone(), s))
        .collect();
    let mut usage: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for c in store.model_calls(run).await? {
        let u = usage.entry(c.task_id.unwrap_or_default()).or_default();
        u.0 += c.input_tokens;
        u.1 += c.output_tokens;
        u.2 += c.cost_micro_usd;
    }
    let mut gates: HashMap<String, Vec<GateReport>> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.events(run, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let passed = match e.kind {
                EventType::GatePassed => true,
                EventType::GateFailed => false,
                _ => continue,
            };
            let Some(task) = &e.task_id else { continue };
            let d = &e.data;
            gates.entry(task.to_string()).or_default().push(GateReport {
                gate: d["gate"].as_u64().unwrap_or(0) as usize,
                kind: d["kind"].as_str().unwrap_or_default().to_string(),
                passed,
                reason: d["reason"].as_str().unwrap_or_default().to_string(),
                output_tail: d["detail"]["output_tail"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                attempt: d["attempt"].as_u64().unwrap_or(0) as u32,
            });
        }
    }
    let step_report = |id: &str| -> StepReport {
        let t = tasks.get(id);
        let snap = snaps.get(id);
        let (i, o, c) = usage.get(id).copied().unwrap_or_default();
        StepReport {
            id: id.to_string(),
            status: t.map_or(TaskStatus::Pending, |t| t.status),
            attempts: t.map_or(0, |t| t.attempt),
            duration_ms: t.and_then(|t| Some(t.finished_at? - t.started_at?)),
            error: t.and_then(|t| t.error.clone()),
            gates: gates.get(id).cloned().unwrap_or_default(),
            rolled_back: snap.is_some_and(|s| s.rolled_back_at.is_some()),
            rollback: snap.and_then(|s| s.rollback.clone()),
            input_tokens: i,
            output_tokens: o,
            cost_usd: c as f64 / 1e6,
            files: t
                .and_then(|t| t.outputs.as_ref())
                .and_then(|o| o.get("changed"))
                .cloned(),
        }
    };
    let order: Vec<String> = rb.inputs["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["step"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let steps: Vec<StepReport> = order.iter().map(|id| step_report(id)).collect();
    let post = step_report(POST_TASK);
    let count = |f: &dyn Fn(&StepReport) -> bool| steps.iter().filter(|s| f(s)).count();
    let files = |key: &str| -> usize {
        steps
            .iter()
            .filter_map(|s| s.files.as_ref()?.get(key)?.as_array().map(Vec::len))
            .sum()
    };
    let totals = json!({
        "steps": steps.len(),
        "succeeded": count(&|s| s.status == TaskStatus::Succeeded),
        "failed": count(&|s| s.status == TaskStatus::Failed),
        "rolledBack": count(&|s| s.rolled_back),
        "attempts": steps.iter().map(|s| s.attempts).sum::<i64>(),
        "durationMs": record.started_at.zip(record.finished_at).map(|(a, b)| b - a),
        "inputTokens": usage.values().map(|u| u.0).sum::<i64>(),
        "outputTokens": usage.values().map(|u| u.1).sum::<i64>(),
        "costUsd": usage.values().map(|u| u.2).sum::<i64>() as f64 / 1e6,
        "filesAdded": files("added"),
        "filesModified": files("modified"),
        "filesDeleted": files("deleted"),
    });
    let predicted = rb.inputs["prp"]["confidence"].clone();
    let outcome = match record.status {
        RunStatus::Succeeded => "succeeded in one pass",
        s if !s.is_terminal() => "not finished",
        _ => "failed",
    };
    let one_pass = record.status == RunStatus::Succeeded && steps.iter().all(|s| s.attempts <= 1);
    let confidence = json!({
        "predicted": predicted,
        "outcome": if record.status == RunStatus::Succeeded && !one_pass { "succeeded after retries" } else { outcome },
        "onePass": one_pass,
    });
    let criteria: Vec<String> = plan
        .tasks
        .iter()
        .find(|t| t.id == POST_TASK)
        .and_then(|t| t.inputs.get("success_criteria"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Ok(PrpReport {
        run_id: run,
        name: plan.name.clone(),
        status: record.status,
        reason: record.reason.clone(),
        rollback: rb.inputs["policy"].clone(),
        preconditions: step_report(PRE_TASK),
        steps,
        postconditions: post,
        success_criteria: criteria,
        totals,
        confidence,
    })
}

/// What a PRP is generated from.
#[derive(Debug, Clone)]
pub enum PrpFrom {
    /// An INITIAL file's text (FEATURE / EXAMPLES / DOCUMENTATION / OTHER CONSIDERATIONS).
    Initial(String),
    /// A gathering run (`nofx gather`): its answers and its `repo:analyze` outputs.
    Gathering(RunId),
}

/// The id of the task of a generating run.
pub const GENERATE_TASK: &str = "generate";

impl Runtime {
    /// Starts a run in which a model writes a PRP (`prp:generate`): from an INITIAL file, or
    /// from a gathering run (then the generating run is its child and, unless `dir` is given,
    /// works in its workspace). `dir` is the project the PRP is about (files the requirements
    /// name are shown to the model; the PRP's context files must be there). The accepted PRP
    /// and its confidence are the outputs of task `generate`; every model call is a usage row
    /// of the run.
    ///
    /// # Errors
    /// An unknown or unfinished gathering run; the errors of [`Runtime::submit_opts`].
    pub async fn generate_prp(
        &self,
        from: PrpFrom,
        dir: Option<PathBuf>,
        mut opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let mut inputs = serde_json::Map::new();
        let mut workspace = dir;
        match from {
            PrpFrom::Initial(text) => {
                inputs.insert("initial".into(), Value::String(text));
            }
            PrpFrom::Gathering(run) => {
                let record = self.store().run(run).await?;
                let tasks = self.store().tasks(run).await?;
                // Every ask phase's answers (by question id), whatever became of its plan.
                let mut answers = serde_json::Map::new();
                for t in tasks
                    .iter()
                    .filter(|t| t.tool == "ask" && t.status == TaskStatus::Succeeded)
                {
                    if let Some(Value::Object(o)) = &t.outputs {
                        answers.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                if answers.is_empty() {
                    return Err(RuntimeError::BadPrp(PrpErrors::one(
                        None,
                        "",
                        format!("run {run} has no answered questions: give a gathering run (`nofx gather` makes one)"),
                    )));
                }
                let answers = Value::Object(answers);
                let analysis: Vec<Value> = tasks
                    .iter()
                    .filter(|t| t.tool == "repo:analyze" && t.status == TaskStatus::Succeeded)
                    .filter_map(|t| t.outputs.clone())
                    .collect();
                inputs.insert(
                    "requirements".into(),
                    json!({"answers": answers, "analysis": analysis}),
                );
                workspace = workspace.or_else(|| Some(PathBuf::from(&record.workspace)));
                opts.parent = opts.parent.or(Some(run));
                opts.project = opts.project.or(Some(record.project));
            }
        }
        opts.workspace = match workspace {
            Some(w) => Some(
                std::fs::canonicalize(&w).map_err(|source| RuntimeError::Io {
                    path: w.display().to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        let plan = Plan {
            tasks: vec![crate::domain::plan::TaskSpec {
                inputs,
                ..crate::domain::plan::TaskSpec::new(GENERATE_TASK, "prp:generate")
            }],
            ..Plan::new("generate-prp")
        };
        self.submit_opts(plan, Map::new(), opts).await
    }

    /// Stores a checked PRP for `project` (`POST /prps`, `nofx prp generate`); its id is
    /// `prp-…`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn store_prp(
        &self,
        prp: &crate::domain::prp::Prp,
        project: &str,
        from_run: Option<RunId>,
    ) -> Result<crate::store::PrpRow, RuntimeError> {
        let row = crate::store::PrpRow {
            id: format!("prp-{}", uuid::Uuid::now_v7().simple()),
            project: project.to_string(),
            name: prp.name.clone(),
            prp: serde_json::to_value(prp).unwrap_or(Value::Null),
            confidence: prp.confidence.as_ref().map(|c| i64::from(c.score)),
            from_run,
            created_at: crate::domain::time::now_ms(),
        };
        self.store().insert_prp(&row).await?;
        Ok(row)
    }
}
