//! Runs over HTTP: submit (plan in JSON or YAML, or a goal), read, list, cancel, events.

use super::auth::{Caller, RequestCorrelation};
use super::error::ApiError;
use super::extract::{Body, Params};
use super::ApiState;
use crate::domain::plan::{Format, PlanSource};
use crate::domain::RunId;
use crate::runtime::{Outcome, SubmitOptions};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A run as the API shows it: what `nofx run --json` prints, plus the last event's `seq`
/// (stream from there to miss nothing) and the model cost so far.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    #[serde(flatten)]
    outcome: Value,
    event_seq: i64,
    cost: f64,
}

/// Reads a run the caller may see; another project's run is "not found".
pub(crate) async fn visible_run(
    st: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<crate::store::RunRecord, ApiError> {
    let id: RunId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no run `{id}`")))?;
    match st.rt.store().run(id).await {
        Ok(r) if r.project == caller.project => Ok(r),
        Ok(_) | Err(crate::store::StoreError::NoSuchRun(_)) => {
            Err(ApiError::not_found(format!("no run `{id}`")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn view(st: &ApiState, run: RunId) -> Result<RunView, ApiError> {
    let store = st.rt.store();
    let event_seq = store.last_seq(run).await?;
    let mut outcome =
        serde_json::to_value(Outcome::load(store, run).await?).map_err(ApiError::internal)?;
    // Where the server keeps files is its own business.
    if let Some(o) = outcome.as_object_mut() {
        o.remove("workspace");
    }
    let cost = store.run_spend(run).await? as f64 / 1e6;
    Ok(RunView {
        outcome,
        event_seq,
        cost,
    })
}

/// What `POST /runs` accepts besides a bare plan.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    plan: Option<Value>,
    #[serde(default)]
    inputs: Map<String, Value>,
    goal: Option<String>,
    template: Option<String>,
}

/// What a request asks to run.
pub(crate) enum Submission {
    /// A plan and its inputs.
    Plan(PlanSource, Map<String, Value>),
    /// A goal for the planner.
    Goal(String),
    /// A template (id) and inputs over its defaults.
    Template(String, Map<String, Value>),
    /// A checkpoint to restore (id).
    Restore(String),
    /// A run to fork.
    Fork(RunId, crate::runtime::Fork),
    /// A gathering run (a questionnaire's plan), working in a directory of the server when
    /// one is given.
    Gathering(PlanSource, Option<std::path::PathBuf>),
    /// A PRP: the directory it works on (a copy, unless in place), and its rollback policy.
    Prp(
        Box<crate::domain::prp::PrpSource>,
        Option<std::path::PathBuf>,
        bool,
        crate::domain::prp::RollbackPolicy,
    ),
}

fn parse_submission(headers: &HeaderMap, body: &[u8]) -> Result<Submission, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send a plan (JSON or YAML), {\"plan\": …, \"inputs\": …} or {\"goal\": \"…\"}",
        ));
    }
    let yaml = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("yaml"));
    let bad_plan = |e: crate::domain::plan::PlanSyntaxError| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plan",
            "the body is not a plan",
        )
        .with("problems", json!([{"line": null, "message": e.message}]))
    };
    if !yaml {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
            if m.contains_key("goal") || m.contains_key("plan") || m.contains_key("template") {
                let env: Envelope = serde_json::from_value(Value::Object(m))
                    .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?;
                return match (env.goal, env.plan, env.template) {
                    (Some(g), None, None) if env.inputs.is_empty() => Ok(Submission::Goal(g)),
                    (None, Some(p), None) => {
                        let src = PlanSource::parse(&p.to_string(), Format::Json, None)
                            .map_err(bad_plan)?;
                        Ok(Submission::Plan(src, env.inputs))
                    }
                    (None, None, Some(t)) => Ok(Submission::Template(t, env.inputs)),
                    _ => Err(ApiError::bad_request(
                        "send one of {\"plan\": …, \"inputs\": …}, {\"template\": \"ID\", \"inputs\": …} or {\"goal\": \"…\"}",
                    )),
                };
            }
        }
    }
    let format = if !yaml && text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let src = PlanSource::parse(text, format, None).map_err(bad_plan)?;
    Ok(Submission::Plan(src, Map::new()))
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request("`Idempotency-Key` must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(k.to_string()))
}

/// How long a retry waits for the run of the request that holds its idempotency key.
const IDEMPOTENT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Claims the idempotency key for `run`; returns the earlier request's run when it holds
/// the key (after waiting for that run to be stored), or `None` when this request owns it.
async fn claim(
    st: &ApiState,
    project: &str,
    key: &str,
    body: &[u8],
    run: RunId,
) -> Result<Option<RunId>, ApiError> {
    use crate::store::Claimed;
    let hash = crate::store::key_hash(&String::from_utf8_lossy(body));
    let store = st.rt.store();
    let end = std::time::Instant::now() + IDEMPOTENT_WAIT;
    loop {
        match store.claim_idempotency(project, key, &hash, run).await? {
            Claimed::New => return Ok(None),
            Claimed::Existing { same_body: false, .. } => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different body",
                ))
            }
            Claimed::Existing { run: earlier, .. } => match store.run(earlier).await {
                Ok(_) => return Ok(Some(earlier)),
                Err(crate::store::StoreError::NoSuchRun(_)) if std::time::Instant::now() < end => {
                    // The first request is still creating it (or failed and gave the key
                    // up, in which case the next claim is ours).
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(crate::store::StoreError::NoSuchRun(_)) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "idempotency_key_pending",
                        "the request holding this Idempotency-Key has not created its run yet; retry later",
                    ))
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
}

/// `POST /runs`: a plan (JSON or YAML), `{"plan", "inputs"}`, `{"template", "inputs"}` or
/// `{"goal"}`; with an `Idempotency-Key`, a retry gets the first request's run.
pub async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(corr): Extension<RequestCorrelation>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let submission = parse_submission(&headers, &body)?;
    submit(&st, &caller, corr, &headers, &body, submission).await
}

/// Stores and starts what `submission` asks for, once per `Idempotency-Key`; answers 201
/// with the run (plus `fromTemplate` for template runs).
pub(crate) async fn submit(
    st: &ApiState,
    caller: &Caller,
    corr: RequestCorrelation,
    headers: &HeaderMap,
    body: &[u8],
    submission: Submission,
) -> Result<Response, ApiError> {
    let idem = idempotency_key(headers)?;
    let from_template = match &submission {
        Submission::Template(t, _) => Some(t.clone()),
        _ => None,
    };
    let created = |v: RunView| {
        let mut doc = serde_json::to_value(v).unwrap_or_default();
        if let (Some(t), Some(o)) = (&from_template, doc.as_object_mut()) {
            o.insert("fromTemplate".into(), json!(t));
        }
        (StatusCode::CREATED, Json(doc)).into_response()
    };
    let id = RunId::new();
    if let Some(k) = &idem {
        if let Some(earlier) = claim(st, &caller.project, k, body, id).await? {
            return Ok(created(view(st, earlier).await?));
        }
    }
    let opts = SubmitOptions {
        correlation: Some(corr.0),
        project: Some(caller.project.clone()),
        id: Some(id),
        no_commands: !caller.has(crate::store::Scope::Shell),
        workspace: match &submission {
            Submission::Gathering(_, dir) => dir.clone(),
            _ => None,
        },
        ..SubmitOptions::default()
    };
    let submitted = match submission {
        Submission::Plan(src, inputs) => st.rt.submit_opts(&src, inputs, opts).await,
        Submission::Template(t, inputs) => {
            st.rt.instantiate(&caller.project, &t, inputs, opts).await
        }
        Submission::Goal(goal) => st
            .rt
            .submit_goal_opts(&goal, crate::planner::PlannerOptions::default(), opts)
            .await
            .map(|(h, _)| h),
        Submission::Restore(cp) => st.rt.restore(&cp, opts).await,
        Submission::Fork(run, fork) => st.rt.fork(run, fork, opts).await,
        Submission::Gathering(src, _) => st.rt.submit_opts(&src, Map::new(), opts).await,
        Submission::Prp(src, path, in_place, rollback) => {
            let how = crate::runtime::PrpRun {
                path,
                in_place,
                rollback,
                submit: opts,
            };
            st.rt.submit_prp(&src, how).await
        }
    };
    let handle = match submitted {
        Ok(h) => h,
        Err(e) => {
            if let Some(k) = &idem {
                // Nothing was stored: a retry may try again.
                if let Err(re) = st.rt.store().release_idempotency(&caller.project, k).await {
                    tracing::warn!(error = %re, "could not release an idempotency key");
                }
            }
            return Err(e.into());
        }
    };
    Ok(created(view(st, handle.id()).await?))
}

/// `GET /runs/{id}`.
pub async fn get(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    Ok(Json(view(&st, r.id).await?))
}

/// Query of `GET /runs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /runs`: newest first; `nextCursor` continues the listing.
pub async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = match q.status.as_deref() {
        None => crate::runtime::RunFilter::All,
        Some(s) => crate::runtime::RunFilter::parse(s)
            .map_err(|e| ApiError::bad_request(format!("`status` {e}")))?,
    };
    let limit = ApiError::whole("limit", &q.limit)?.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and 500, got {limit}"
        )));
    }
    let cursor = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::bad_request("`cursor` is not a cursor this server gave out")
        })?),
    };
    let store = st.rt.store();
    let mut items = Vec::new();
    let mut next = None;
    if filter == crate::runtime::RunFilter::Interrupted {
        // Interrupted runs are the unfinished ones no live process holds: few, one page.
        let mut open = Vec::new();
        for s in filter.statuses() {
            open.extend(
                store
                    .project_runs(&caller.project, Some(s), None, 500)
                    .await?,
            );
        }
        open.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        for r in &open {
            let s = crate::runtime::RunSummary::of(store, r).await?;
            if s.resumable && (items.len() as i64) < limit {
                items.push(s);
            }
        }
    } else {
        let status = match filter {
            crate::runtime::RunFilter::Status(s) => Some(s),
            _ => None,
        };
        let page = store
            .project_runs(&caller.project, status, cursor, limit + 1)
            .await?;
        let runs: Vec<&crate::store::RunRecord> = page.iter().take(limit as usize).collect();
        if page.len() as i64 > limit {
            next = runs.last().map(|r| encode_cursor(r.created_at, r.id));
        }
        for r in runs {
            items.push(crate::runtime::RunSummary::of(store, r).await?);
        }
    }
    Ok(Json(json!({"runs": items, "nextCursor": next})))
}

fn encode_cursor(created_at: i64, id: RunId) -> String {
    format!("{created_at}.{id}")
}

fn decode_cursor(c: &str) -> Option<(i64, RunId)> {
    let (t, id) = c.split_once('.')?;
    Some((t.parse().ok()?, id.parse().ok()?))
}

/// `POST /runs/{id}/cancel`.
pub async fn cancel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let outcome = st
        .rt
        .cancel(
            r.id,
            &format!("cancelled through the API (key {})", caller.key_id),
        )
        .await?;
    let (code, state) = match outcome {
        crate::runtime::Cancelled::Stopping => (StatusCode::ACCEPTED, "stopping".to_string()),
        crate::runtime::Cancelled::Requested(_) => (StatusCode::ACCEPTED, "requested".to_string()),
        crate::runtime::Cancelled::Finished(s) => (StatusCode::CONFLICT, format!("already {s}")),
    };
    if code == StatusCode::CONFLICT {
        return Err(ApiError::new(
            code,
            "run_ended",
            format!("run {} has already ended ({state})", r.id),
        ));
    }
    Ok((code, Json(json!({"id": r.id, "cancel": state}))).into_response())
}

/// Query of `GET /runs/{id}/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /runs/{id}/events?after=SEQ`.
pub async fn events(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Params(q): Params<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    let limit = ApiError::whole("limit", &q.limit)?.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and 10000, got {limit}"
        )));
    }
    let after = ApiError::whole("after", &q.after)?.unwrap_or(0).max(0);
    let evs = st.rt.store().events(r.id, after, limit).await?;
    Ok(Json(json!({"events": evs})))
}

/// `GET /runs/{id}/tasks/{task}/transcript`: what the task's agents said and did, loop by
/// loop, turn by turn, with each tool call's input and result and each turn's tokens and cost.
pub async fn transcript(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, task)): Path<(String, String)>,
) -> Result<Json<crate::store::Transcript>, ApiError> {
    let r = visible_run(&st, &caller, &id).await?;
    if !st.rt.store().has_task(&r, &task).await? {
        return Err(ApiError::not_found(format!(
            "run {} has no task `{task}`",
            r.id
        )));
    }
    Ok(Json(st.rt.store().transcript(r.id, &task).await?))
}
