//! `nofx questions ls [RUN]` and `nofx answer RUN QUESTION VALUE | --idk [--as NAME]`: the
//! typed questions runs ask, and answers to them from any process.

use super::{open_existing_store, runtime, CliResult, Failure, Global};
use crate::domain::question::{Answer, QuestionStatus};
use crate::runtime::{default_answerer, AskedQuestion};
use crate::store::QuestionsOf;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum QuestionsCommand {
    /// List questions: a run's (all of them), or without RUN the pending ones of every run.
    Ls {
        /// Run id or unique prefix.
        run: Option<String>,
        /// Only questions of this status: pending, answered, skipped, no_default.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// One JSON document on stdout (the document of `GET /runs/{id}/questions`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct AnswerArgs {
    /// Run id or unique prefix.
    run: String,
    /// The question's id (or its wait id, `wait-…`).
    question: String,
    /// The answer: text; a number; yes/no; for a multiselect a JSON list or comma-separated
    /// choices.
    #[arg(required_unless_present = "idk", conflicts_with = "idk")]
    value: Option<String>,
    /// "I don't know": the question's default (or smart default) is taken.
    #[arg(long)]
    idk: bool,
    /// Who answers (default: the user of this process).
    #[arg(long = "as", value_name = "NAME")]
    by: Option<String>,
    /// Print the question with its stored answer as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn dispatch(g: &Global, c: QuestionsCommand) -> CliResult {
    let QuestionsCommand::Ls { run, status, json } = c;
    let status = match status.as_deref() {
        Some(s) => Some(QuestionStatus::parse(s).map_err(Failure::Input)?),
        None if run.is_none() => Some(QuestionStatus::Pending),
        None => None,
    };
    let store = open_existing_store(g).await?;
    let result = async {
        let of = match &run {
            Some(r) => QuestionsOf::Run(store.find_run(r).await?),
            None => QuestionsOf::All,
        };
        Ok::<_, Failure>(
            store
                .questions(of, status, crate::runtime::questions::MAX_LISTED)
                .await?,
        )
    }
    .await;
    store.close().await;
    let list: Vec<AskedQuestion> = result?.iter().filter_map(AskedQuestion::of).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "questions": list }))
                .map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    if list.is_empty() {
        eprintln!(
            "no {}questions",
            status
                .map(|s| format!("{} ", s.as_str()))
                .unwrap_or_default()
        );
        return Ok(());
    }
    for q in &list {
        println!("{}", line(q));
    }
    if let Some(p) = list.iter().find(|q| q.status == QuestionStatus::Pending) {
        eprintln!(
            "answer with: nofx answer {} {} VALUE   (or --idk for the default)",
            p.run_id, p.question.id
        );
    }
    Ok(())
}

/// One question in a line: run, task, id, type, status, answer or what it falls back to,
/// and the text.
fn line(q: &AskedQuestion) -> String {
    let spec = &q.question;
    let mut kind = spec.kind.as_str().to_string();
    if !spec.options.is_empty() {
        kind = format!("{kind} [{}]", spec.options.join("|"));
    }
    let detail = match (&q.answer, q.status) {
        (Some(a), _) => {
            let source = a.source.map(|s| s.as_str()).unwrap_or("none");
            let late = if a.timed_out { ", timed out" } else { "" };
            format!("= {} ({source}, by {}{late})", a.value, a.answered_by)
        }
        (None, QuestionStatus::Pending) => {
            let mut d = match (&spec.default, &spec.smart_default) {
                (Some(v), _) => format!("default {v}"),
                (None, Some(v)) => format!("smart default {v}"),
                (None, None) if spec.required => "required".into(),
                (None, None) => "optional".into(),
            };
            if let Some(at) = &q.deadline_at {
                d.push_str(&format!(", until {at}"));
            }
            d
        }
        (None, _) => q.reason.clone().unwrap_or_default(),
    };
    format!(
        "{}  {}  {}  {kind}  {}  {detail}  — {}",
        q.run_id,
        q.task_id,
        spec.id,
        q.status.as_str(),
        spec.text
    )
}

pub async fn answer(g: &Global, a: AnswerArgs) -> CliResult {
    let by = a.by.clone().unwrap_or_else(default_answerer);
    let rt = runtime(g).await?;
    let result = async {
        let run = rt.store().find_run(&a.run).await?;
        let answer = match &a.value {
            None => Answer::Idk,
            Some(text) => {
                // Read as the question's type wants it (a multiselect's list).
                let rows = rt.store().question_rows(run, &a.question).await?;
                match rows.iter().rev().find_map(|w| w.question.as_deref()) {
                    Some(q) => Answer::Value(q.spec.from_text(text)),
                    None => Answer::Value(serde_json::Value::String(text.clone())),
                }
            }
        };
        Ok::<_, Failure>(rt.answer(run, &a.question, answer, &by).await?)
    }
    .await;
    rt.shutdown().await;
    let q = result?;
    let shown = q
        .answer
        .as_ref()
        .map_or("null".to_string(), |x| x.value.to_string());
    eprintln!(
        "question {} of run {} answered {shown} as {by}; the run's owner goes on with it",
        q.question.id, q.run_id
    );
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&q).map_err(|e| Failure::Error(e.to_string()))?
        );
    }
    Ok(())
}
