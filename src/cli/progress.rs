//! Live progress on stderr: a bar with done/total/running/failed and elapsed time when stderr
//! is a terminal, plain lines otherwise; a line per finished task; a summary at the end.

use crate::domain::ApprovalDecision;
use crate::{Event, EventData, Outcome, RunStatus};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    /// Tasks in flight, by id, with when their attempt started (an attempt that a stopped
    /// process left behind is no longer in flight once the run was interrupted).
    running: HashMap<String, chrono::DateTime<chrono::Utc>>,
    failed: usize,
    started: Instant,
    /// Model calls answered, their tokens and cost (micro-USD).
    model_calls: u64,
    model_tokens: u64,
    model_cost: i64,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self {
            bar,
            total,
            done: 0,
            running: HashMap::new(),
            failed: 0,
            started: Instant::now(),
            model_calls: 0,
            model_tokens: 0,
            model_cost: 0,
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn refresh(&self) {
        if let Some(b) = &self.bar {
            b.set_position(self.done as u64);
            b.set_message(format!(
                "running {} · failed {}",
                self.running.len(),
                self.failed
            ));
        }
    }

    pub fn event(&mut self, e: &Event) {
        let task = e
            .task_id
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        // An event nofx did not write (its data lacks its type's fields) changes nothing.
        let Ok(data) = e.payload() else {
            return;
        };
        match data {
            // Whatever was in flight stopped with the process that ran it.
            EventData::RunInterrupted(_) => self.running.clear(),
            EventData::RunRestored(r) => {
                self.done += r.restored.len();
                self.line(format!(
                    "restored {} task(s) from checkpoint {} of run {}; to run: {}",
                    r.restored.len(),
                    r.checkpoint_id,
                    r.parent_run_id,
                    if r.rerun.is_empty() {
                        "nothing".to_string()
                    } else {
                        r.rerun.join(", ")
                    }
                ));
            }
            EventData::ApprovalRequested(a) => {
                self.running.remove(&task);
                let who = if a.approvers.is_empty() {
                    "anyone".to_string()
                } else {
                    a.approvers.join(", ")
                };
                let until = match a.deadline {
                    Some(d) => format!(
                        " until {} (then {})",
                        crate::domain::time::text(&d),
                        a.on_timeout.as_str()
                    ),
                    None => String::new(),
                };
                self.line(format!(
                    "  waiting {task}: approval by {who}{until}: nofx approve {} {task} --as NAME",
                    e.run_id
                ));
            }
            EventData::ApprovalDecided(d) => {
                // The task's success or failure follows and counts it.
                self.running.insert(task.clone(), e.at);
                let reason = d.reason.unwrap_or_default();
                self.line(format!(
                    "  {:<7} {task} by {}{}",
                    match d.decision {
                        ApprovalDecision::Approve => "approved",
                        ApprovalDecision::Reject => "rejected",
                    },
                    d.by,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ));
            }
            EventData::TaskStarted(_) => {
                self.running.insert(task.clone(), e.at);
            }
            EventData::TaskDecomposed(d) => {
                self.total += d.subtasks.len();
                if let Some(b) = &self.bar {
                    b.set_length(self.total as u64);
                }
                self.line(format!(
                    "  split   {task} into {} subtask(s) ({}, by {})",
                    d.subtasks.len(),
                    d.source,
                    d.agent.as_deref().unwrap_or("-")
                ));
            }
            EventData::TaskMerged(m) => {
                let partial = if m.partial {
                    format!(", partial: {} did not succeed", m.failed.len())
                } else {
                    String::new()
                };
                self.line(format!(
                    "  merged  {task}: {} result(s) ({}{partial})",
                    m.subtasks, m.merge
                ));
            }
            EventData::TaskReplanned(r) => {
                self.total += r.subtasks.len();
                if let Some(b) = &self.bar {
                    b.set_length(self.total as u64);
                }
                self.line(format!(
                    "  replan  {task} (round {}): {} subtask(s) replace {}: {}",
                    r.round,
                    r.subtasks.len(),
                    r.replaced.join(", "),
                    r.reason
                ));
            }
            EventData::TaskSucceeded(t) => {
                let took = self
                    .running
                    .remove(&task)
                    .map(|at| (e.at - at).num_milliseconds().max(0) as f64 / 1000.0);
                self.done += 1;
                let agent = t.agent.as_deref().unwrap_or("-");
                match took {
                    Some(s) => self.line(format!("  ok      {task} ({agent}, {s:.2}s)")),
                    None => self.line(format!("  ok      {task} ({agent})")),
                }
            }
            EventData::TaskFailed(f) => {
                self.running.remove(&task);
                self.done += 1;
                self.failed += 1;
                self.line(format!("  FAILED  {task}: {}", f.error));
            }
            EventData::TaskRetrying(r) => {
                self.running.remove(&task);
                self.line(format!(
                    "  retry   {task} after attempt {}: {}",
                    r.attempt, r.error
                ));
            }
            EventData::TaskSkipped(r) => {
                self.done += 1;
                self.line(format!("  skipped {task}: {}", r.reason));
            }
            EventData::TaskCancelled(r) => {
                self.running.remove(&task);
                self.done += 1;
                self.line(format!("  cancel  {task}: {}", r.reason));
            }
            EventData::GateFailed(g) => self.line(format!("  gate    {task}: {}", g.reason)),
            EventData::PrpPreconditionFailed(c) => self.line(format!(
                "  prp     precondition failed, no step runs: {}",
                c.reason
            )),
            EventData::PrpPostconditionFailed(c) => {
                self.line(format!("  prp     postcondition failed: {}", c.reason))
            }
            EventData::PrpIntegrityViolation(v) => self.line(format!(
                "  prp     {}: changed protected {}",
                v.step,
                v.paths.join(", ")
            )),
            EventData::PrpStepRolledBack(r) => {
                let mut how = Vec::new();
                if let Some(c) = &r.command {
                    how.push(format!("ran {} (exit {})", c["argv"], c["exit_code"]));
                }
                if r.restored {
                    how.push(format!(
                        "snapshot put back ({} written, {} removed)",
                        r.written, r.removed
                    ));
                }
                self.line(format!(
                    "  undo    {} ({}): {}",
                    r.step,
                    r.cause,
                    if how.is_empty() {
                        "nothing to do".to_string()
                    } else {
                        how.join(", ")
                    }
                ))
            }
            EventData::ModelCompleted(m) => {
                self.model_calls += 1;
                self.model_tokens += m.input_tokens + m.output_tokens;
                self.model_cost += (m.cost * 1e6).round() as i64;
            }
            EventData::ModelFallback(f) => self.line(format!(
                "  model   {task}: {} failed ({}), trying {}",
                f.from, f.cause, f.to
            )),
            EventData::AgentTurn(t) if !t.tool_calls.is_empty() => {
                let tools: Vec<&str> = t.tool_calls.iter().map(|c| c.tool.as_str()).collect();
                self.line(format!(
                    "  agent   {task}: {} turn {} calls {}",
                    t.of.agent,
                    t.turn,
                    tools.join(", ")
                ));
            }
            EventData::ToolReturned(r) if r.is_error => self.line(format!(
                "  agent   {task}: {} {}: {}",
                r.tool,
                r.status,
                r.output.lines().next().unwrap_or_default()
            )),
            EventData::ToolApprovalRequested(a) => {
                self.running.remove(&task);
                self.line(format!(
                    "  waiting {task}: {} asks to call {} {}: nofx approve|reject {} {task} --as NAME",
                    a.of.agent,
                    a.tool,
                    a.input.to_string().chars().take(200).collect::<String>(),
                    e.run_id
                ));
            }
            EventData::QuestionAsked(a) => {
                self.running.remove(&task);
                let q = &a.question;
                let mut hint = q.kind.as_str().to_string();
                if !q.options.is_empty() {
                    hint = format!("{hint}: {}", q.options.join(" | "));
                }
                if let Some(d) = &q.default {
                    hint.push_str(&format!(", default {d}"));
                }
                if let Some(d) = a.deadline {
                    hint.push_str(&format!(", until {}", crate::domain::time::text(&d)));
                }
                self.line(format!(
                    "  asking  {task}: {} ({hint}): nofx answer {} {} VALUE|--idk",
                    q.text, e.run_id, q.id
                ));
            }
            EventData::QuestionAnswered(a) | EventData::QuestionDefaulted(a) => {
                let how = match (a.answer.source, a.answer.timed_out) {
                    (Some(s), true) => format!("{} at the deadline", s.as_str()),
                    (Some(s), false) => s.as_str().to_string(),
                    (None, _) if a.reason.is_some() => "no default".into(),
                    (None, _) => "no answer".into(),
                };
                self.line(format!(
                    "  answer  {task}: {} = {} ({how}, by {})",
                    a.question, a.answer.value, a.answer.answered_by
                ));
            }
            EventData::QuestionSkipped(s) => {
                self.line(format!(
                    "  skipped {task}: question {}: {}",
                    s.question, s.reason
                ));
            }
            EventData::ToolApprovalDecided(d) => self.line(format!(
                "  {:<7} {task}: {} by {}",
                match d.decision {
                    ApprovalDecision::Approve => "approved",
                    ApprovalDecision::Reject => "rejected",
                },
                d.tool,
                d.by
            )),
            EventData::AgentFinished(f) if f.stop_reason != "answer" => self.line(format!(
                "  agent   {task}: {} stopped ({}){}",
                f.of.agent,
                f.stop_reason,
                f.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            // Amounts as the event log writes them.
            EventData::CostAlert(a) => self.line(format!(
                "  cost    {task}: one call to {} cost ${}, above the ${} alert threshold",
                a.model,
                serde_json::Value::from(a.cost),
                serde_json::Value::from(a.threshold)
            )),
            _ => {}
        }
        self.refresh();
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    pub fn summary(&self, o: &Outcome) {
        self.finish();
        let count = |s: crate::TaskStatus| o.tasks.iter().filter(|t| t.status == s).count();
        let ok = count(crate::TaskStatus::Succeeded);
        let secs = o
            .duration_ms
            .map(|d| d as f64 / 1000.0)
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let verdict = match o.status {
            RunStatus::Succeeded => "succeeded".to_string(),
            s => match &o.reason {
                Some(r) => format!("{s}: {r}"),
                None => s.to_string(),
            },
        };
        eprintln!("run {verdict}");
        eprintln!(
            "  tasks: {ok}/{} succeeded, {} failed, {} skipped, {} cancelled",
            self.total.max(o.tasks.len()),
            count(crate::TaskStatus::Failed),
            count(crate::TaskStatus::Skipped),
            count(crate::TaskStatus::Cancelled)
        );
        eprintln!("  duration: {secs:.2}s");
        if self.model_calls > 0 {
            eprintln!(
                "  models: {} answer(s), {} tokens, {} (nofx usage has every call)",
                self.model_calls,
                self.model_tokens,
                crate::models::budget::usd(self.model_cost)
            );
        }
        eprintln!("  run id: {}", o.id);
        eprintln!("  correlation id: {}", o.correlation_id);
    }
}
