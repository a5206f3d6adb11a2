//! Typed questions over HTTP: the questions of a run or of the key's project, answers, and
//! gathering runs made from questionnaires.

use super::auth::{Caller, RequestCorrelation};
use super::error::ApiError;
use super::extract::{Body, Params};
use super::runs::visible_run;
use super::ApiState;
use crate::domain::plan::{Format, PlanSource};
use crate::domain::question::{Answer, QuestionStatus};
use crate::domain::questionnaire::QuestionnaireSource;
use crate::runtime::AskedQuestion;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Query of the question listings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
}

fn status(q: &ListQuery) -> Result<Option<QuestionStatus>, ApiError> {
    q.status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(QuestionStatus::parse)
        .transpose()
        .map_err(ApiError::bad_request)
}

/// `GET /runs/{id}/questions?status=pending|answered|skipped|no_default`: `{questions}`,
/// the run's, oldest first.
pub async fn of_run(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = status(&q)?;
    let r = visible_run(&st, &caller, &id).await?;
    Ok(Json(
        json!({"questions": st.rt.questions(r.id, status).await?}),
    ))
}

/// `GET /questions?status=pending`: `{questions}` of every run of the key's project.
pub async fn of_project(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = status(&q)?;
    let list = st.rt.project_questions(&caller.project, status).await?;
    Ok(Json(json!({ "questions": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default)]
    idk: bool,
    by: Option<String>,
}

/// Keeps `"value": null` apart from no `value` at all.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `POST /runs/{id}/questions/{q}/answer` with `{"value": …}` or `{"idk": true}` (and
/// optionally `"by": NAME`, else the key's id) → 200, the question with its stored
/// answer; 422 naming the question and the rule an answer breaks (nothing stored); 409
/// when it was answered already with something else (the same answer again → 200).
pub async fn answer(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, question)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<AskedQuestion>, ApiError> {
    const SHAPE: &str = "the body must be {\"value\": …} or {\"idk\": true}";
    let b: AnswerBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("{SHAPE}: {e}")))?;
    let answer = match (b.value, b.idk) {
        (Some(v), false) => Answer::Value(v),
        (None, true) => Answer::Idk,
        (Some(_), true) => return Err(ApiError::bad_request(format!("{SHAPE}, not both"))),
        (None, false) => return Err(ApiError::bad_request(SHAPE)),
    };
    let r = visible_run(&st, &caller, &id).await?;
    let by = b.by.unwrap_or_else(|| format!("key:{}", caller.key_id));
    Ok(Json(st.rt.answer(r.id, &question, answer, &by).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatherBody {
    questionnaire: Value,
    path: Option<String>,
    #[serde(default)]
    answers: Map<String, Value>,
}

/// `POST /gather` with `{"questionnaire": DOCUMENT or its YAML/JSON text, "path": DIR,
/// "answers": {ID: VALUE or {"idk": true}}}` → 201, the gathering run (its questions are
/// then asked and answered like any other; its last task makes the plan). A questionnaire
/// with problems is a 422 listing each (line, question, message). `path` is a directory
/// on the server's host and needs a key with the `shell` scope.
pub async fn gather(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let b: GatherBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"questionnaire\": …, \"path\": DIR, \"answers\": {{…}}}}: {e}"
        ))
    })?;
    let (text, format) = match &b.questionnaire {
        Value::String(t) => (t.clone(), Format::Yaml),
        Value::Object(_) => (b.questionnaire.to_string(), Format::Json),
        _ => {
            return Err(ApiError::bad_request(
                "`questionnaire` is a questionnaire document, or its YAML or JSON text",
            ))
        }
    };
    let src = QuestionnaireSource::parse(&text, format, None).map_err(|e| {
        let problems: Vec<Value> = e
            .problems
            .iter()
            .map(|p| json!({"line": p.line, "at": p.at, "message": p.message}))
            .collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_questionnaire",
            format!("the questionnaire has {} problem(s)", problems.len()),
        )
        .with("problems", Value::Array(problems))
    })?;
    let dir = match &b.path {
        None => None,
        Some(p) => Some(super::auth::server_dir(
            &caller,
            p,
            "a gathering run in a directory of the server",
        )?),
    };
    let known: std::collections::HashSet<&str> = src
        .questionnaire
        .phases
        .iter()
        .flat_map(|p| p.questions.iter().flatten().map(|q| q.id.as_str()))
        .collect();
    if let Some(k) = b.answers.keys().find(|k| !known.contains(k.as_str())) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_answer",
            format!("`answers`: the questionnaire asks no question `{k}`"),
        ));
    }
    let by = format!("key:{}", caller.key_id);
    let plan = src.questionnaire.compile_with(&b.answers, Some(&by));
    let submission = super::runs::Submission::Gathering(PlanSource::from_plan(plan), dir);
    super::runs::submit(&st, &caller, corr, &headers, &body, submission).await
}
