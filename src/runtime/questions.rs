//! Answers to typed questions. An answer is checked against its question (type, option,
//! rule), recorded on the question's wait row (the first answer wins, exactly once), then
//! the run's owner — here, or in the process that executes the run — announces it and has
//! the asking task run again. "I don't know", an empty optional answer and the deadline
//! take the question's default, else its smart default, else null when optional; a
//! required question with neither is settled `no_default` and its task fails.

use super::{messages, RunHandle, Runtime, RuntimeError};
use crate::domain::question::{Answer, AnswerSource, Question, QuestionStatus, StoredAnswer};
use crate::domain::time::{now_ms, rfc3339};
use crate::domain::{RunId, WaitId};
use crate::store::waits::{settle, stored_answer};
use crate::store::{QuestionsOf, Settled, WaitRow};
use serde::Serialize;
use serde_json::Value;

/// Most questions one listing returns.
pub const MAX_LISTED: i64 = 1_000;

/// A question asked by a task, where it stands and its answer: the same document for
/// `GET /runs/{id}/questions`, `GET /questions`, the answer's response and
/// `nofx questions ls --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AskedQuestion {
    /// Its wait, `wait-…` (answers may name it instead of the question's id).
    pub wait_id: WaitId,
    /// The run.
    pub run_id: RunId,
    /// The task that asked.
    pub task_id: String,
    /// Which ask of the task asked it.
    pub scope: String,
    /// `pending`, `answered`, `skipped` or `no_default`.
    pub status: QuestionStatus,
    /// The question as asked.
    pub question: Question,
    /// When it was asked (RFC 3339).
    pub asked_at: String,
    /// When the default applies (RFC 3339; none: it waits for an answer).
    pub deadline_at: Option<String>,
    /// The answer, once settled.
    pub answer: Option<StoredAnswer>,
    /// Why it was skipped, or why no value was found.
    pub reason: Option<String>,
}

impl AskedQuestion {
    /// The document of a question's wait row (`None` for other waits).
    pub fn of(w: &WaitRow) -> Option<Self> {
        let q = w.question.as_deref()?;
        Some(Self {
            wait_id: w.id.clone(),
            run_id: w.run_id,
            task_id: w.task_id.clone(),
            scope: q.scope.clone(),
            status: q.status,
            question: q.spec.clone(),
            asked_at: rfc3339(w.requested_at),
            deadline_at: w.deadline_at.map(rfc3339),
            answer: stored_answer(w),
            reason: w.reason.clone(),
        })
    }
}

/// The answers of the settled questions among `asked` (the questions of one ask).
fn answers_among(asked: &[WaitRow]) -> impl Fn(&str) -> Option<Value> + '_ {
    move |id: &str| {
        asked.iter().find_map(|r| {
            let a = r.question.as_deref()?;
            (a.spec.id == id && a.status == QuestionStatus::Answered)
                .then(|| a.value.clone())
                .flatten()
        })
    }
}

/// How question `row` is settled without an answer (the deadline): as [`settle`] with
/// "I don't know".
pub(crate) fn by_default(row: &WaitRow, asked: &[WaitRow], by: &str, timed_out: bool) -> Settled {
    let Some(q) = row.question.as_deref() else {
        return Settled {
            status: QuestionStatus::NoDefault,
            value: None,
            source: None,
            timed_out,
            by: by.to_string(),
            reason: Some("not a question".into()),
        };
    };
    let answer_of = answers_among(asked);
    settle(&q.spec, &Answer::Idk, &answer_of, by, timed_out).expect("I don't know breaks no rule")
}

/// The name an answer is given under when none is named: the user of this process.
pub fn default_answerer() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "user".into())
}

impl Runtime {
    /// Questions of run `run`, oldest first, optionally of one status (at most
    /// 1,000).
    ///
    /// # Errors
    /// `NoSuchRun` (as a store error); store failures.
    pub async fn questions(
        &self,
        run: RunId,
        status: Option<QuestionStatus>,
    ) -> Result<Vec<AskedQuestion>, RuntimeError> {
        let store = self.store();
        store.run(run).await?;
        let rows = store
            .questions(QuestionsOf::Run(run), status, MAX_LISTED)
            .await?;
        Ok(rows.iter().filter_map(AskedQuestion::of).collect())
    }

    /// Questions of every run of `project`, oldest first, optionally of one status (at
    /// most 1,000).
    ///
    /// # Errors
    /// Store failures.
    pub async fn project_questions(
        &self,
        project: &str,
        status: Option<QuestionStatus>,
    ) -> Result<Vec<AskedQuestion>, RuntimeError> {
        let rows = self
            .store()
            .questions(QuestionsOf::Project(project), status, MAX_LISTED)
            .await?;
        Ok(rows.iter().filter_map(AskedQuestion::of).collect())
    }

    /// Answers question `question` (its id, or its wait id) of run `run` as `by`, and has
    /// the run's owner go on with it. Returns the question with its stored answer; the same
    /// answer again returns it unchanged.
    ///
    /// # Errors
    /// `NoSuchQuestion`; `BadAnswer` naming the rule the value breaks (nothing stored, the
    /// question still waits); `Answered` when it was answered already with something else,
    /// was skipped, its run ended, or several pending questions share the id; store
    /// failures.
    ///
    /// # Cancel safety
    /// Once recorded the answer stands; the owner also finds it when it next reads the
    /// run's waits (on resume).
    pub async fn answer(
        &self,
        run: RunId,
        question: &str,
        answer: Answer,
        by: &str,
    ) -> Result<AskedQuestion, RuntimeError> {
        let by = match by.trim() {
            "" => default_answerer(),
            b => b.to_string(),
        };
        let store = self.store();
        let record = store.run(run).await?;
        let rows = store.question_rows(run, question).await?;
        if rows.is_empty() {
            return Err(RuntimeError::NoSuchQuestion(format!(
                "run {run} has no question `{question}`"
            )));
        }
        let open: Vec<&WaitRow> = rows.iter().filter(|w| w.is_open()).collect();
        if open.len() > 1 {
            let ids: Vec<String> = open
                .iter()
                .map(|w| format!("{} (task {})", w.id, w.task_id))
                .collect();
            return Err(RuntimeError::Answered(format!(
                "question `{question}` of run {run} is asked {} times; answer one by its wait id: {}",
                open.len(),
                ids.join(", ")
            )));
        }
        let Some(row) = open.first().copied() else {
            let last = rows.last().expect("rows is not empty");
            return already(last, &answer);
        };
        if record.status.is_terminal() {
            return Err(RuntimeError::Answered(format!(
                "run {run} has ended ({}); its questions can no longer be answered",
                record.status
            )));
        }
        let q = row.question.as_deref().expect("a question's row");
        let asked = store.asked(run, &row.task_id, &q.scope).await?;
        let settled = settle(&q.spec, &answer, &answers_among(&asked), &by, false)?;
        let now = now_ms();
        if !store.answer_question(&row.id, &settled, now).await? {
            let rows = store.question_rows(run, row.id.as_str()).await?;
            let w = rows.last().unwrap_or(row);
            return already(w, &answer);
        }
        self.inner
            .node
            .send(messages::Wake(run))
            .await
            .map_err(|_| RuntimeError::Stopped)??;
        let mut done = row.clone();
        done.decided_by = Some(settled.by.clone());
        done.decided_at = Some(now);
        done.reason = settled.reason.clone();
        if let Some(q) = done.question.as_deref_mut() {
            q.status = settled.status;
            q.value = settled.value;
            q.source = settled.source;
        }
        Ok(AskedQuestion::of(&done).expect("a question's row"))
    }
}

/// An answer to a question already settled: the same answer again is accepted as it
/// stands; anything else names the first.
fn already(w: &WaitRow, answer: &Answer) -> Result<AskedQuestion, RuntimeError> {
    let doc = AskedQuestion::of(w).expect("a question's row");
    let q = w.question.as_deref().expect("a question's row");
    let id = &q.spec.id;
    if q.status == QuestionStatus::Skipped {
        return Err(RuntimeError::Answered(format!(
            "question `{id}` of run {} was not asked: {}",
            w.run_id,
            w.reason.as_deref().unwrap_or("its condition was not met")
        )));
    }
    let same = match answer {
        Answer::Value(v) => {
            q.source == Some(AnswerSource::User) && q.spec.accept(v).ok() == q.value
        }
        Answer::Idk => q.source != Some(AnswerSource::User) && !q.timed_out,
    };
    if same {
        return Ok(doc);
    }
    let first = doc.answer.as_ref();
    Err(RuntimeError::Answered(format!(
        "question `{id}` of run {} was already answered: {} ({}, by {} at {})",
        w.run_id,
        first.map_or("null".into(), |a| a.value.to_string()),
        first
            .and_then(|a| a.source)
            .map_or(q.status.as_str(), AnswerSource::as_str),
        first.map_or("", |a| a.answered_by.as_str()),
        first.map_or("", |a| a.answered_at.as_str()),
    )))
}

impl RunHandle {
    /// The run's questions still waiting for an answer, oldest first.
    ///
    /// # Errors
    /// As [`Runtime::questions`].
    pub async fn pending_questions(&self) -> Result<Vec<AskedQuestion>, RuntimeError> {
        self.rt
            .questions(self.id(), Some(QuestionStatus::Pending))
            .await
    }

    /// Answers question `question` (its id, or its wait id) as the user of this process
    /// ([`default_answerer`]).
    ///
    /// # Errors
    /// As [`Runtime::answer`].
    pub async fn answer(
        &self,
        question: &str,
        answer: Answer,
    ) -> Result<AskedQuestion, RuntimeError> {
        self.rt.answer(self.id(), question, answer, "").await
    }

    /// Answers question `question` as `by`.
    ///
    /// # Errors
    /// As [`Runtime::answer`].
    pub async fn answer_as(
        &self,
        question: &str,
        answer: Answer,
        by: &str,
    ) -> Result<AskedQuestion, RuntimeError> {
        self.rt.answer(self.id(), question, answer, by).await
    }
}
