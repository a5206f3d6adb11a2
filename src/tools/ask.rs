//! `ask`: asks the user typed questions and returns the answers. Its inputs are one
//! question's keys, or `questions: [...]` for several asked together. Asking writes each
//! question's wait row with its `question.asked` event and the waiting task row in one
//! commit, and the attempt stops; the task runs again once every question asked is
//! settled (answered, defaulted, or `no_default`), and this tool then reads the answers
//! from the store. A question whose `depends_on` or `${answers.ID}` smart default names
//! another question of the same ask is asked once that one is settled; one whose condition
//! is not met is settled `skipped` with `question.skipped`. The questions of one ask are
//! told apart from other asks of the task by the attempt's idempotency key (a plan task's,
//! or one call of an agent's loop), so an agent can ask several times.

use super::{Suspension, Tool, ToolContext, ToolError, ToolOutput};
use crate::domain::approval::WaitKind;
use crate::domain::event::payload::{QuestionAsked, QuestionSkipped};
use crate::domain::plan::OnTimeout;
use crate::domain::question::{Question, QuestionStatus, MAX_QUESTIONS};
use crate::domain::time::{from_ms, now_ms};
use crate::domain::{EventData, WaitId};
use crate::store::{QuestionWait, WaitRow};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Asks the user.
pub struct Ask;

/// The questions of `inputs`: `questions: [...]`, or the inputs as one question; with the
/// problems of each (as JSON pointer, message).
pub(crate) fn questions(inputs: &Value) -> Result<Vec<Question>, Vec<(String, String)>> {
    let one = |v: &Value, at: String| -> Result<Question, (String, String)> {
        serde_json::from_value::<Question>(v.clone()).map_err(|e| (at, e.to_string()))
    };
    let (list, base): (Vec<(String, &Value)>, bool) = match inputs.get("questions") {
        Some(Value::Array(items)) => (
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("/questions/{i}"), v))
                .collect(),
            true,
        ),
        Some(_) => {
            return Err(vec![(
                "/questions".into(),
                "`questions` must be a list of questions".into(),
            )])
        }
        None => (vec![(String::new(), inputs)], false),
    };
    if base && inputs.as_object().is_some_and(|m| m.len() > 1) {
        return Err(vec![(
            String::new(),
            "with `questions`, the question keys go inside each question".into(),
        )]);
    }
    if list.is_empty() {
        return Err(vec![("/questions".into(), "no questions to ask".into())]);
    }
    if list.len() > MAX_QUESTIONS {
        return Err(vec![(
            "/questions".into(),
            format!(
                "{} questions; one ask asks at most {MAX_QUESTIONS}",
                list.len()
            ),
        )]);
    }
    let mut out = Vec::with_capacity(list.len());
    let mut problems = Vec::new();
    for (at, v) in list {
        match one(v, at.clone()) {
            Err(p) => problems.push(p),
            Ok(q) => {
                for p in q.problems() {
                    problems.push((at.clone(), format!("question `{}`: {p}", q.id)));
                }
                for need in q.needs() {
                    if !out.iter().any(|e: &Question| e.id == need) {
                        problems.push((
                            at.clone(),
                            format!(
                                "question `{}` names question `{need}`, which is not asked before it in this ask",
                                q.id
                            ),
                        ));
                    }
                }
                if out.iter().any(|e: &Question| e.id == q.id) {
                    problems.push((at.clone(), format!("question id `{}` is used twice", q.id)));
                }
                out.push(q);
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A question's new wait row.
fn wait_row(
    ctx: &ToolContext,
    q: &Question,
    status: QuestionStatus,
    reason: Option<String>,
) -> WaitRow {
    let now = now_ms();
    let open = status == QuestionStatus::Pending;
    WaitRow {
        id: WaitId::new(),
        run_id: ctx.corr.run,
        task_id: ctx
            .corr
            .task
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        attempt: i64::from(ctx.attempt),
        kind: WaitKind::Question,
        approvers: Vec::new(),
        deadline_at: q
            .timeout_s
            .filter(|_| open)
            .map(|s| now + (s * 1000.0).round() as i64),
        on_timeout: OnTimeout::Approve,
        requested_at: now,
        decision: None,
        decided_by: (!open).then(|| "nofx".to_string()),
        reason,
        decided_at: (!open).then_some(now),
        question: Some(Box::new(QuestionWait {
            scope: ctx.idempotency_key.clone(),
            spec: q.clone(),
            status,
            value: None,
            source: None,
            timed_out: false,
            noted: !open,
        })),
    }
}

impl Tool for Ask {
    fn name(&self) -> &str {
        "ask"
    }

    fn description(&self) -> &str {
        "Asks the user typed questions (text, select, multiselect, boolean, number) and returns the answers by question id. Give one question's keys (id, text, type, options, default, validate, required, timeout_s, allow_other), or `questions: [...]` for several asked together. The user may say they do not know: the question's default is then taken, or null for an optional question."
    }

    fn idempotent(&self) -> bool {
        // Asking again finds the questions already asked, and their answers.
        true
    }

    fn input_schema(&self) -> Value {
        let rules = json!({"type": "object", "properties": {
            "regex": {"type": "string"}, "min_len": {"type": "integer", "minimum": 0},
            "max_len": {"type": "integer", "minimum": 0}, "min_items": {"type": "integer", "minimum": 0},
            "max_items": {"type": "integer", "minimum": 0}, "min": {"type": "number"}, "max": {"type": "number"}
        }, "additionalProperties": false});
        let question = json!({
            "type": "object",
            "required": ["id", "text", "type"],
            "properties": {
                "id": {"type": "string", "description": "letters, digits, _ and -"},
                "text": {"type": "string", "description": "what is asked"},
                "type": {"enum": ["text", "select", "multiselect", "boolean", "number"]},
                "options": {"type": "array", "items": {"type": "string"}},
                "default": {},
                "smart_default": {"description": "${answers.ID} of an earlier question of this ask, or ${tasks.ID.outputs.PATH}"},
                "depends_on": {"type": "object", "description": "{question: ID, value: V} or {output: REF, value: V}"},
                "validate": rules,
                "required": {"type": "boolean"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "allow_other": {"type": "boolean"}
            }
        });
        json!({
            "type": "object",
            "description": "one question's keys, or `questions` for several",
            "properties": {
                "questions": {"type": "array", "items": question, "minItems": 1, "maxItems": MAX_QUESTIONS},
                "id": {"type": "string"}, "text": {"type": "string"},
                "type": {"enum": ["text", "select", "multiselect", "boolean", "number"]},
                "options": {"type": "array", "items": {"type": "string"}},
                "default": {}, "smart_default": {}, "depends_on": {"type": "object"},
                "validate": rules, "required": {"type": "boolean"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "allow_other": {"type": "boolean"}
            }
        })
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        questions(inputs).err().unwrap_or_default()
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let asked = questions(&ctx.inputs).map_err(|p| {
                ToolError::InvalidInput(
                    p.into_iter()
                        .map(|(at, m)| {
                            if at.is_empty() {
                                m
                            } else {
                                format!("{at}: {m}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            let link = &ctx.link.0;
            let task = ctx
                .corr
                .task
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let rows = link
                .store()
                .asked(ctx.corr.run, &task, &ctx.idempotency_key)
                .await
                .map_err(|e| ToolError::Io(e.to_string()))?;
            let open: Vec<WaitRow> = rows.iter().filter(|w| w.is_open()).cloned().collect();
            if !open.is_empty() {
                return Err(suspend(&ctx, open, Vec::new()).await);
            }
            let mut settled: HashMap<String, (QuestionStatus, Option<Value>, Option<String>)> =
                rows.iter()
                    .filter_map(|w| {
                        let q = w.question.as_deref()?;
                        Some((
                            q.spec.id.clone(),
                            (q.status, q.value.clone(), w.reason.clone()),
                        ))
                    })
                    .collect();
            let mut new_rows = Vec::new();
            let mut events = Vec::new();
            let mut asking = false;
            for q in &asked {
                if settled.contains_key(&q.id) {
                    continue;
                }
                if q.needs().iter().any(|n| !settled.contains_key(*n)) {
                    // Asked once the question it names is settled.
                    continue;
                }
                let answer = |id: &str| settled.get(id).and_then(|(_, v, _)| v.clone());
                if q.is_asked(&answer) {
                    let w = wait_row(&ctx, q, QuestionStatus::Pending, None);
                    events.push(EventData::QuestionAsked(QuestionAsked {
                        wait_id: w.id.clone(),
                        question: Box::new(q.clone()),
                        scope: ctx.idempotency_key.clone(),
                        deadline: w.deadline_at.map(from_ms),
                    }));
                    new_rows.push(w);
                    asking = true;
                } else {
                    let why = q.condition();
                    let w = wait_row(&ctx, q, QuestionStatus::Skipped, Some(why.clone()));
                    events.push(EventData::QuestionSkipped(QuestionSkipped {
                        wait_id: w.id.clone(),
                        question: q.id.clone(),
                        reason: why.clone(),
                    }));
                    new_rows.push(w);
                    settled.insert(q.id.clone(), (QuestionStatus::Skipped, None, Some(why)));
                }
            }
            if asking {
                return Err(suspend(&ctx, new_rows, events).await);
            }
            if !new_rows.is_empty() {
                let batch = crate::store::Batch {
                    waits: new_rows,
                    ..Default::default()
                };
                link.commit(batch, events)
                    .await
                    .map_err(|_| ToolError::Cancelled)?;
            }
            let mut out = ToolOutput::default();
            for q in &asked {
                let Some((status, value, reason)) = settled.get(&q.id) else {
                    return Err(ToolError::Io(format!(
                        "question `{}` was neither asked nor settled",
                        q.id
                    )));
                };
                if *status == QuestionStatus::NoDefault {
                    return Err(ToolError::NoDefault(reason.clone().unwrap_or_else(|| {
                        crate::domain::question::NoDefault(q.id.clone()).to_string()
                    })));
                }
                out.outputs
                    .insert(q.id.clone(), value.clone().unwrap_or(Value::Null));
            }
            Ok(out)
        })
    }
}

/// Has the task wait on `waits` once this attempt ends; the error ends it.
async fn suspend(ctx: &ToolContext, waits: Vec<WaitRow>, events: Vec<EventData>) -> ToolError {
    let pending: Vec<String> = waits
        .iter()
        .filter(|w| w.is_open())
        .filter_map(|w| w.question.as_ref().map(|q| q.spec.id.clone()))
        .collect();
    let mut outputs = Map::new();
    outputs.insert("asking".into(), json!(pending));
    let _ = ctx
        .link
        .0
        .suspend(Suspension {
            attempt: ctx.attempt,
            waits,
            events,
            outputs,
        })
        .await;
    ToolError::Waiting(format!(
        "waiting for answers to {} (nofx answer RUN QUESTION VALUE)",
        pending.join(", ")
    ))
}
