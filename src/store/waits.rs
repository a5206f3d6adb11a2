//! Waits on people: a manual approval is a row naming who may answer and until when; the
//! first decision fills it, exactly once, whoever makes it (a person, or the deadline).

use super::{q, with_pool, Store, StoreError};
use crate::domain::approval::{ApprovalDecision, WaitKind};
use crate::domain::event::payload;
use crate::domain::plan::OnTimeout;
use crate::domain::question::{
    Answer, AnswerSource, Question, QuestionStatus, Rejected, StoredAnswer,
};
use crate::domain::time::rfc3339;
use crate::domain::EventData;
use crate::domain::{RunId, WaitId};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// What a question's wait holds beyond a wait's columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionWait {
    /// Which ask of the task asked it (a plan task's ask, or one call of an agent).
    pub scope: String,
    /// The question as asked.
    pub spec: Question,
    /// Where it stands.
    pub status: QuestionStatus,
    /// The answer's value, once answered (null: an optional question left without one).
    pub value: Option<Value>,
    /// Where the value came from.
    pub source: Option<AnswerSource>,
    /// Whether the deadline answered it.
    pub timed_out: bool,
    /// Whether its `question.answered`/`question.defaulted` event is committed.
    pub noted: bool,
}

/// A wait row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitRow {
    /// Id, `wait-…`.
    pub id: WaitId,
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: String,
    /// The attempt whose outputs wait for the decision.
    pub attempt: i64,
    /// What it waits for.
    pub kind: WaitKind,
    /// Who may decide (anyone when empty).
    pub approvers: Vec<String>,
    /// When `on_timeout` decides (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub deadline_at: Option<i64>,
    /// The decision taken at the deadline.
    pub on_timeout: OnTimeout,
    /// When the wait began (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub requested_at: i64,
    /// The decision, once decided.
    pub decision: Option<ApprovalDecision>,
    /// Who decided (`timeout` for the deadline's default).
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::opt_ms")]
    pub decided_at: Option<i64>,
    /// The question, for a wait of kind `question`.
    pub question: Option<Box<QuestionWait>>,
}

impl WaitRow {
    /// Whether it still waits: undecided, unanswered.
    pub fn is_open(&self) -> bool {
        self.decided_at.is_none()
    }

    /// Whether `name` may decide.
    pub fn may_decide(&self, name: &str) -> bool {
        self.approvers.is_empty() || self.approvers.iter().any(|a| a == name)
    }
}

const COLUMNS: &str = "id, run_id, task_id, attempt, kind, approvers, deadline_at, on_timeout, \
                       requested_at, decision, decided_by, reason, decided_at, scope, spec, \
                       question_status, answer, source, timed_out, noted_at";

macro_rules! wait_from_row {
    ($r:expr) => {{
        let r = $r;
        let run: String = r.try_get("run_id").map_err(q("read wait"))?;
        let approvers: String = r.try_get("approvers").map_err(q("read wait"))?;
        let corrupt = |what: &'static str| move |why: String| StoreError::Corrupt { what, why };
        let kind: String = r.try_get("kind").map_err(q("read wait"))?;
        let on_timeout: String = r.try_get("on_timeout").map_err(q("read wait"))?;
        let decision: Option<String> = r.try_get("decision").map_err(q("read wait"))?;
        WaitRow {
            id: WaitId::from(r.try_get::<String, _>("id").map_err(q("read wait"))?),
            run_id: run.parse().map_err(|_| StoreError::Corrupt {
                what: "wait run id",
                why: run.clone(),
            })?,
            task_id: r.try_get("task_id").map_err(q("read wait"))?,
            attempt: r.try_get("attempt").map_err(q("read wait"))?,
            kind: WaitKind::parse(&kind).map_err(corrupt("wait kind"))?,
            approvers: serde_json::from_str(&approvers).map_err(|e| StoreError::Corrupt {
                what: "wait approvers",
                why: e.to_string(),
            })?,
            deadline_at: r.try_get("deadline_at").map_err(q("read wait"))?,
            on_timeout: OnTimeout::parse(&on_timeout).map_err(corrupt("wait on_timeout"))?,
            requested_at: r.try_get("requested_at").map_err(q("read wait"))?,
            decision: decision
                .map(|d| ApprovalDecision::parse(&d))
                .transpose()
                .map_err(corrupt("wait decision"))?,
            decided_by: r.try_get("decided_by").map_err(q("read wait"))?,
            reason: r.try_get("reason").map_err(q("read wait"))?,
            decided_at: r.try_get("decided_at").map_err(q("read wait"))?,
            question: question_from_row!(r),
        }
    }};
}

macro_rules! question_from_row {
    ($r:expr) => {{
        let r = $r;
        let spec: Option<String> = r.try_get("spec").map_err(q("read wait"))?;
        match spec {
            None => None,
            Some(spec) => {
                let corrupt =
                    |what: &'static str| move |why: String| StoreError::Corrupt { what, why };
                let status: Option<String> =
                    r.try_get("question_status").map_err(q("read wait"))?;
                let answer: Option<String> = r.try_get("answer").map_err(q("read wait"))?;
                let source: Option<String> = r.try_get("source").map_err(q("read wait"))?;
                let timed_out: Option<bool> = r.try_get("timed_out").map_err(q("read wait"))?;
                let noted: Option<i64> = r.try_get("noted_at").map_err(q("read wait"))?;
                Some(Box::new(QuestionWait {
                    scope: r
                        .try_get::<Option<String>, _>("scope")
                        .map_err(q("read wait"))?
                        .unwrap_or_default(),
                    spec: serde_json::from_str(&spec)
                        .map_err(|e| e.to_string())
                        .map_err(corrupt("question spec"))?,
                    status: QuestionStatus::parse(status.as_deref().unwrap_or("pending"))
                        .map_err(corrupt("question status"))?,
                    value: answer
                        .map(|a| serde_json::from_str(&a).map_err(|e| e.to_string()))
                        .transpose()
                        .map_err(corrupt("question answer"))?,
                    source: source
                        .map(|s| AnswerSource::parse(&s))
                        .transpose()
                        .map_err(corrupt("answer source"))?,
                    timed_out: timed_out.unwrap_or(false),
                    noted: noted.is_some(),
                }))
            }
        }
    }};
}

impl Store {
    /// Wait rows `sql` selects (its `$1`, `$2`, … bound to `binds`, in order).
    async fn wait_rows(
        &self,
        sql: &str,
        binds: &[&str],
        what: &'static str,
    ) -> Result<Vec<WaitRow>, StoreError> {
        with_pool!(self, |p, _b| {
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(*b);
            }
            let rows = query.fetch_all(p).await.map_err(q(what))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(wait_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The waits of a run, oldest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn waits(&self, run: RunId) -> Result<Vec<WaitRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM waits WHERE run_id = $1 ORDER BY requested_at, id");
        self.wait_rows(&sql, &[&run.to_string()], "list waits")
            .await
    }

    /// The latest wait of a task, decided or not.
    ///
    /// # Errors
    /// Query failures.
    pub async fn last_wait(&self, run: RunId, task: &str) -> Result<Option<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM waits WHERE run_id = $1 AND task_id = $2 \
             ORDER BY requested_at DESC, id DESC LIMIT 1"
        );
        with_pool!(self, |p, _b| {
            match sqlx::query(&sql)
                .bind(run.to_string())
                .bind(task)
                .fetch_optional(p)
                .await
                .map_err(q("read wait"))?
            {
                Some(r) => Ok(Some(wait_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Records a decision on an undecided wait. Returns false when the wait was already
    /// decided (the first decision stands).
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn decide_wait(
        &self,
        id: &WaitId,
        decision: ApprovalDecision,
        by: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE waits SET decision = $1, decided_by = $2, reason = $3, decided_at = $4 \
                   WHERE id = $5 AND decided_at IS NULL";
        with_pool!(self, |p, _b| {
            let done = sqlx::query(sql)
                .bind(decision.as_str())
                .bind(by)
                .bind(reason)
                .bind(at)
                .bind(id.as_str())
                .execute(p)
                .await
                .map_err(q("decide wait"))?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The question waits of one ask (`scope`) of a task, in the order they were written.
    ///
    /// # Errors
    /// Query failures.
    pub async fn asked(
        &self,
        run: RunId,
        task: &str,
        scope: &str,
    ) -> Result<Vec<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM waits WHERE run_id = $1 AND task_id = $2 AND scope = $3 \
             AND kind = 'question' ORDER BY requested_at, id"
        );
        self.wait_rows(&sql, &[&run.to_string(), task, scope], "list questions")
            .await
    }

    /// The question waits of a run whose question id (or wait id) is `q`, oldest first.
    ///
    /// # Errors
    /// Query failures.
    pub async fn question_rows(
        &self,
        run: RunId,
        question: &str,
    ) -> Result<Vec<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM waits WHERE run_id = $1 AND kind = 'question' \
             AND (question_id = $2 OR id = $2) ORDER BY requested_at, id"
        );
        self.wait_rows(&sql, &[&run.to_string(), question], "read questions")
            .await
    }

    /// The undecided approvals of every unfinished run of `project` (a run that ended waits
    /// for nobody), oldest first; at most `limit`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn open_approvals(
        &self,
        project: &str,
        limit: i64,
    ) -> Result<Vec<WaitRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM waits WHERE run_id IN (SELECT id FROM runs WHERE project = $1 \
             AND status IN ('pending', 'running', 'waiting')) \
             AND kind = 'approval' AND decided_at IS NULL ORDER BY requested_at, id LIMIT {}",
            limit.max(0)
        );
        self.wait_rows(&sql, &[project], "list approvals").await
    }

    /// Questions of one run (`run`) or of every run of `project`, oldest first, optionally
    /// of one status; at most `limit`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn questions(
        &self,
        of: QuestionsOf<'_>,
        status: Option<QuestionStatus>,
        limit: i64,
    ) -> Result<Vec<WaitRow>, StoreError> {
        let (filter, key) = match of {
            QuestionsOf::Run(run) => ("w.run_id = $1", run.to_string()),
            QuestionsOf::All => ("$1 = ''", String::new()),
            QuestionsOf::Project(p) => (
                "w.run_id IN (SELECT id FROM runs WHERE project = $1)",
                p.to_string(),
            ),
        };
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("w.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM waits w WHERE {filter} AND w.kind = 'question' \
             AND ($2 = '' OR w.question_status = $2) ORDER BY w.requested_at, w.id \
             LIMIT {}",
            limit.max(0)
        );
        let status = status.map(QuestionStatus::as_str).unwrap_or_default();
        self.wait_rows(&sql, &[&key, status], "list questions")
            .await
    }

    /// Records the answer of a pending question. Returns false when it was already
    /// answered (the first answer stands).
    ///
    /// # Errors
    /// Query failures.
    pub(crate) async fn answer_question(
        &self,
        id: &WaitId,
        answer: &Settled,
        at: i64,
    ) -> Result<bool, StoreError> {
        let sql =
            "UPDATE waits SET question_status = $1, answer = $2, source = $3, timed_out = $4, \
                   decided_by = $5, reason = $6, decided_at = $7 \
                   WHERE id = $8 AND decided_at IS NULL";
        with_pool!(self, |p, _b| {
            let done = sqlx::query(sql)
                .bind(answer.status.as_str())
                .bind(answer.value.as_ref().map(Value::to_string))
                .bind(answer.source.map(AnswerSource::as_str))
                .bind(answer.timed_out)
                .bind(&answer.by)
                .bind(answer.reason.as_deref())
                .bind(at)
                .bind(id.as_str())
                .execute(p)
                .await
                .map_err(q("answer question"))?;
            Ok(done.rows_affected() == 1)
        })
    }
}

/// Whose questions [`Store::questions`] lists.
#[derive(Debug, Clone, Copy)]
pub enum QuestionsOf<'a> {
    /// One run's.
    Run(RunId),
    /// Every run's of a project.
    Project(&'a str),
    /// Every run's.
    All,
}

/// How a question was settled: its status, value, where the value came from, who (or
/// `timeout`), whether by the deadline, and why (for `no_default`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// `answered` or `no_default`.
    pub status: QuestionStatus,
    /// The value (null for an optional question left without one, or for `no_default`).
    pub value: Option<Value>,
    /// Where it came from.
    pub source: Option<AnswerSource>,
    /// Whether the deadline settled it.
    pub timed_out: bool,
    /// Who answered (`timeout` for the deadline).
    pub by: String,
    /// Why, when no value was found.
    pub reason: Option<String>,
}

/// The stored answer of a settled (answered or `no_default`) question.
pub fn stored_answer(w: &WaitRow) -> Option<StoredAnswer> {
    let q = w.question.as_deref()?;
    if !matches!(
        q.status,
        QuestionStatus::Answered | QuestionStatus::NoDefault
    ) {
        return None;
    }
    Some(StoredAnswer {
        value: q.value.clone().unwrap_or(Value::Null),
        source: q.source,
        answered_by: w.decided_by.clone().unwrap_or_default(),
        timed_out: q.timed_out,
        answered_at: rfc3339(w.decided_at.unwrap_or(w.requested_at)),
    })
}

/// `question.answered` (a person's value) or `question.defaulted` (anything else) for a
/// settled question.
pub fn settled_event(w: &WaitRow) -> Option<EventData> {
    let answer = stored_answer(w)?;
    let data = payload::QuestionAnswered {
        wait_id: w.id.clone(),
        question: w.question.as_deref()?.spec.id.clone(),
        reason: w.reason.clone(),
        answer,
    };
    Some(if data.answer.source == Some(AnswerSource::User) {
        EventData::QuestionAnswered(data)
    } else {
        EventData::QuestionDefaulted(data)
    })
}

/// How a question is settled by `given`: a value is checked against the question (an empty
/// one of a required question breaks `required`); "I don't know" and an empty optional value
/// take the default, else the smart default (`answer_of` gives earlier answers), else null
/// when optional, else `no_default`.
///
/// # Errors
/// The rule a value breaks.
pub fn settle(
    spec: &Question,
    given: &Answer,
    answer_of: &dyn Fn(&str) -> Option<Value>,
    by: &str,
    timed_out: bool,
) -> Result<Settled, Rejected> {
    let settled = |status, value, source, reason| Settled {
        status,
        value,
        source,
        timed_out,
        by: by.to_string(),
        reason,
    };
    match given {
        Answer::Value(v) if !Question::is_empty_answer(v) => Ok(settled(
            QuestionStatus::Answered,
            Some(spec.accept(v)?),
            Some(AnswerSource::User),
            None,
        )),
        Answer::Value(_) if spec.required => Err(Rejected {
            question: spec.id.clone(),
            rule: "required",
            why: "an answer is required (answer {\"idk\": true} to take the default)".into(),
        }),
        Answer::Value(_) | Answer::Idk => {
            let smart = spec.smart_value(answer_of);
            Ok(match spec.fallback(smart.as_ref()) {
                Ok((value, source)) => settled(QuestionStatus::Answered, Some(value), source, None),
                Err(e) => settled(QuestionStatus::NoDefault, None, None, Some(e.to_string())),
            })
        }
    }
}
