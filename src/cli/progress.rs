//! Live progress on stderr: a bar with done/total/running/failed and elapsed time when stderr
//! is a terminal, plain lines otherwise; a line per finished task; a summary at the end.

use indicatif::{ProgressBar, ProgressStyle};
use nofx::{Event, EventType, Outcome, RunStatus};
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
        let text = |k: &str| {
            e.data
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        // A list of strings in the event's data.
        let list = |k: &str| {
            e.data
                .get(k)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        match e.kind {
            // Whatever was in flight stopped with the process that ran it.
            EventType::RunInterrupted => self.running.clear(),
            EventType::RunRestored => {
                let (restored, rerun) = (list("restored"), list("rerun"));
                self.done += restored.len();
                self.line(format!(
                    "restored {} task(s) from checkpoint {} of run {}; to run: {}",
                    restored.len(),
                    text("checkpointId"),
                    text("parentRunId"),
                    if rerun.is_empty() {
                        "nothing".to_string()
                    } else {
                        rerun.join(", ")
                    }
                ));
            }
            EventType::ApprovalRequested => {
                self.running.remove(&task);
                let who = list("approvers");
                let who = if who.is_empty() {
                    "anyone".to_string()
                } else {
                    who.join(", ")
                };
                let until = match e.data.get("deadline").and_then(|v| v.as_str()) {
                    Some(d) => format!(" until {d} (then {})", text("onTimeout")),
                    None => String::new(),
                };
                self.line(format!(
                    "  waiting {task}: approval by {who}{until}: nofx approve {} {task} --as NAME",
                    e.run_id
                ));
            }
            EventType::ApprovalDecided => {
                // The task's success or failure follows and counts it.
                self.running.insert(task.clone(), e.at);
                let reason = text("reason");
                self.line(format!(
                    "  {:<7} {task} by {}{}",
                    if text("decision") == "approve" {
                        "approved"
                    } else {
                        "rejected"
                    },
                    text("by"),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ));
            }
            EventType::TaskStarted => {
                self.running.insert(task.clone(), e.at);
            }
            EventType::TaskSucceeded => {
                let took = self
                    .running
                    .remove(&task)
                    .map(|at| (e.at - at).num_milliseconds().max(0) as f64 / 1000.0);
                self.done += 1;
                let agent = e.data.get("agent").and_then(|v| v.as_str()).unwrap_or("-");
                match took {
                    Some(s) => self.line(format!("  ok      {task} ({agent}, {s:.2}s)")),
                    None => self.line(format!("  ok      {task} ({agent})")),
                }
            }
            EventType::TaskFailed => {
                self.running.remove(&task);
                self.done += 1;
                self.failed += 1;
                self.line(format!("  FAILED  {task}: {}", text("error")));
            }
            EventType::TaskRetrying => {
                self.running.remove(&task);
                self.line(format!(
                    "  retry   {task} after attempt {}: {}",
                    e.data["attempt"],
                    text("error")
                ));
            }
            EventType::TaskSkipped => {
                self.done += 1;
                self.line(format!("  skipped {task}: {}", text("reason")));
            }
            EventType::TaskCancelled => {
                self.running.remove(&task);
                self.done += 1;
                self.line(format!("  cancel  {task}: {}", text("reason")));
            }
            EventType::GateFailed => self.line(format!("  gate    {task}: {}", text("reason"))),
            EventType::ModelCompleted => {
                let n = |k: &str| e.data.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                self.model_calls += 1;
                self.model_tokens += n("inputTokens") + n("outputTokens");
                let usd = e.data.get("cost").and_then(|v| v.as_f64()).unwrap_or(0.0);
                self.model_cost += (usd * 1e6).round() as i64;
            }
            EventType::ModelFallback => self.line(format!(
                "  model   {task}: {} failed ({}), trying {}",
                text("from"),
                text("cause"),
                text("to")
            )),
            EventType::CostAlert => self.line(format!(
                "  cost    {task}: one call to {} cost ${}, above the ${} alert threshold",
                text("model"),
                e.data["cost"],
                e.data["threshold"]
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
        let count = |s: nofx::TaskStatus| o.tasks.iter().filter(|t| t.status == s).count();
        let ok = count(nofx::TaskStatus::Succeeded);
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
            count(nofx::TaskStatus::Failed),
            count(nofx::TaskStatus::Skipped),
            count(nofx::TaskStatus::Cancelled)
        );
        eprintln!("  duration: {secs:.2}s");
        if self.model_calls > 0 {
            eprintln!(
                "  models: {} answer(s), {} tokens, {} (nofx usage has every call)",
                self.model_calls,
                self.model_tokens,
                nofx::models::budget::usd(self.model_cost)
            );
        }
        eprintln!("  run id: {}", o.id);
        eprintln!("  correlation id: {}", o.correlation_id);
    }
}
