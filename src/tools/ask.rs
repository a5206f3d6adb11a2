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
use crate::domain::event::payload::{QuestionAsked, QuestionDropped, QuestionSkipped};
use crate::domain::plan::OnTimeout;
use crate::domain::question::{Question, QuestionStatus, MAX_QUESTIONS};
use crate::domain::questionnaire::MAX_GENERATED;
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
    let mut keys = inputs.clone();
    let generate = keys.as_object_mut().map(|m| {
        let g = m.remove("generate");
        m.remove("context");
        m.remove("answers");
        m.remove("answered_by");
        g
    });
    if let Some(Some(g)) = &generate {
        if !matches!(g.as_u64(), Some(n) if (1..=u64::from(MAX_GENERATED)).contains(&n)) {
            return Err(vec![(
                "/generate".into(),
                format!("`generate` must be 1 to {MAX_GENERATED}"),
            )]);
        }
    }
    let inputs = &keys;
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
    let generating = matches!(generate, Some(Some(_)));
    if list.is_empty() && !generating {
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

/// The answer given in advance to question `id` (inputs' `answers`).
fn given(inputs: &Value, id: &str) -> Option<crate::domain::question::Answer> {
    let v = inputs.get("answers")?.get(id)?;
    if v.get("idk").and_then(Value::as_bool) == Some(true) {
        return Some(crate::domain::question::Answer::Idk);
    }
    Some(crate::domain::question::Answer::Value(v.clone()))
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
        // What a caller (a plan's author, a model) reads; the whole check of a question is
        // `check_inputs`, which reads it into its type.
        let kinds = json!(["text", "select", "multiselect", "boolean", "number"]);
        json!({
            "type": "object",
            "description": "one question's keys, or `questions` for several asked together",
            "properties": {
                "questions": {"type": "array", "maxItems": MAX_QUESTIONS, "description": "questions asked together, each with the keys below"},
                "id": {"type": "string", "description": "letters, digits, _ and -"},
                "text": {"type": "string", "description": "what is asked"},
                "type": {"enum": kinds},
                "options": {"type": "array", "description": "the choices of a select or multiselect (at least 2)"},
                "default": {"description": "taken on I don't know, an empty optional answer or the deadline"},
                "smart_default": {"description": "${answers.ID} of an earlier question of this ask, or ${tasks.ID.outputs.PATH}"},
                "depends_on": {"type": "object", "description": "{question: ID, value: V} or {output: REF, value: V}: asked only then"},
                "validate": {"type": "object", "description": "regex, min_len, max_len, min_items, max_items, min, max"},
                "required": {"type": "boolean", "description": "default true"},
                "timeout_s": {"type": "number", "description": "seconds before the default applies"},
                "allow_other": {"type": "boolean", "description": "a select or multiselect also takes free text"},
                "generate": {"type": "integer", "description": "a model proposes up to this many more questions"},
                "context": {"type": "object", "description": "what the proposed questions may build on (earlier answers, an analysis)"},
                "answers": {"type": "object", "description": "answers given in advance, by question id (a value, or {idk: true}); a question answered so is not waited for"},
                "answered_by": {"type": "string", "description": "who gave the answers in advance"}
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
            let mut asked = asked;
            let mut events = Vec::new();
            let n = ctx
                .inputs
                .get("generate")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if rows.is_empty() && n > 0 {
                let (extra, dropped) = generate(&ctx, &asked, n as usize).await?;
                asked.extend(extra);
                events.extend(dropped);
            } else {
                // Questions a model proposed are in the rows of the first round.
                for w in &rows {
                    if let Some(q) = w.question.as_deref() {
                        if !asked.iter().any(|a| a.id == q.spec.id) {
                            asked.push(q.spec.clone());
                        }
                    }
                }
            }
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
                    let mut w = wait_row(&ctx, q, QuestionStatus::Pending, None);
                    events.push(EventData::QuestionAsked(QuestionAsked {
                        wait_id: w.id.clone(),
                        question: Box::new(q.clone()),
                        scope: ctx.idempotency_key.clone(),
                        deadline: w.deadline_at.map(from_ms),
                    }));
                    // Answered in advance: settled in the commit that asks it.
                    if let Some(given) = given(&ctx.inputs, &q.id) {
                        let by = ctx
                            .inputs
                            .get("answered_by")
                            .and_then(Value::as_str)
                            .unwrap_or("answers");
                        match crate::store::waits::settle(q, &given, &answer, by, false) {
                            Ok(done) => {
                                w.deadline_at = None;
                                w.decided_by = Some(done.by.clone());
                                w.decided_at = Some(w.requested_at);
                                w.reason = done.reason.clone();
                                if let Some(qw) = w.question.as_deref_mut() {
                                    qw.status = done.status;
                                    qw.value = done.value.clone();
                                    qw.source = done.source;
                                    qw.noted = true;
                                }
                                events.extend(crate::store::waits::settled_event(&w));
                                settled
                                    .insert(q.id.clone(), (done.status, done.value, done.reason));
                                new_rows.push(w);
                                continue;
                            }
                            Err(e) => {
                                w.reason =
                                    Some(format!("the answer given in advance was refused: {e}"));
                            }
                        }
                    }
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
            if !new_rows.is_empty() || !events.is_empty() {
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

/// Up to `n` more questions the task's model proposes from the inputs' `context` and the
/// questions already asked; each is checked like a written one and stands alone (no
/// `depends_on`, no `smart_default`); a bad one is dropped with `question.dropped`. No model
/// configured: none, with a `question.dropped` saying so.
async fn generate(
    ctx: &ToolContext,
    fixed: &[Question],
    n: usize,
) -> Result<(Vec<Question>, Vec<EventData>), ToolError> {
    let dropped = |proposed: Value, reason: String| {
        EventData::QuestionDropped(QuestionDropped {
            proposed: super::agent::event_value(&proposed),
            reason,
        })
    };
    let known: Vec<Value> = fixed
        .iter()
        .map(|q| json!({"id": q.id, "text": q.text, "type": q.kind.as_str()}))
        .collect();
    let context = ctx.inputs.get("context").cloned().unwrap_or(json!({}));
    let system = format!(
        "You help gather the requirements of a software change by proposing follow-up questions to the user. \
         Reply with only a JSON array of at most {n} questions, nothing else. Each question is an object with \
         `id` (letters, digits, _ and -), `text`, `type` (text, select, multiselect, boolean or number), \
         `options` (at least 2, for select and multiselect), and optionally `default` (an acceptable answer), \
         `required` (true or false) and `validate` ({{regex, min_len, max_len, min_items, max_items, min, max}}). \
         Ask only what the answers and the analysis below do not already tell, and never repeat a question already asked."
    );
    let request = format!(
        "Questions already asked:\n{}\n\nWhat is known so far (answers and analysis):\n{}",
        Value::Array(known),
        super::agent::cut(&context.to_string(), 24 * 1024)
    );
    let ask = crate::models::Ask {
        system: Some(system),
        messages: vec![crate::models::Message::user(request)],
        max_tokens: 2048,
        temperature: Some(0.0),
        requires_reasoning: false,
        tools: Vec::new(),
        model: None,
    };
    let answer = match ctx.models.complete(&ask).await {
        Ok(a) => a,
        Err(crate::models::CallError::Budget(b)) => return Err(ToolError::Budget(b.to_string())),
        Err(e) => {
            return Ok((
                Vec::new(),
                vec![dropped(
                    Value::Null,
                    format!("no questions were generated: {e}"),
                )],
            ))
        }
    };
    let text = answer.text.trim();
    let start = text.find('[');
    let end = text.rfind(']');
    let proposed: Vec<Value> = match (start, end) {
        (Some(s), Some(e)) if s < e => serde_json::from_str(&text[s..=e]).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut events = Vec::new();
    if proposed.is_empty() {
        events.push(dropped(
            Value::String(super::agent::cut(text, 500)),
            "the model's answer holds no JSON list of questions".into(),
        ));
    }
    let mut out: Vec<Question> = Vec::new();
    for p in proposed {
        if out.len() >= n || fixed.len() + out.len() >= MAX_QUESTIONS {
            events.push(dropped(p, format!("more than {n} questions were proposed")));
            continue;
        }
        let q: Question = match serde_json::from_value(p.clone()) {
            Ok(q) => q,
            Err(e) => {
                events.push(dropped(p, format!("not a question: {e}")));
                continue;
            }
        };
        let mut why = q.problems();
        if q.depends_on.is_some() || q.smart_default.is_some() {
            why.push("a proposed question stands alone (no depends_on, no smart_default)".into());
        }
        if fixed.iter().chain(&out).any(|o| o.id == q.id) {
            why.push(format!("question id `{}` is already asked", q.id));
        }
        if why.is_empty() {
            out.push(q);
        } else {
            events.push(dropped(p, why.join("; ")));
        }
    }
    Ok((out, events))
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
