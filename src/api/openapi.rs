//! `GET /openapi.json`: an OpenAPI 3.1 description of every endpoint. The operations are
//! listed in [`OPERATIONS`]; a test calls each one on a live server, so the document cannot
//! name an endpoint the server does not have.

use serde_json::{json, Map, Value};

/// Every operation: method, path, summary, whether it needs a key, success status.
pub const OPERATIONS: &[(&str, &str, &str, bool, u16)] = &[
    ("get", "/health", "Liveness", false, 200),
    ("get", "/ready", "Readiness: the store answers", false, 200),
    ("get", "/openapi.json", "This document", false, 200),
    ("post", "/runs", "Submit a plan (JSON or YAML), {plan, inputs}, {template, inputs} or {goal}; Idempotency-Key makes retries safe", true, 201),
    ("get", "/runs", "The project's runs, newest first (status, limit, cursor)", true, 200),
    ("get", "/runs/stream", "Run-level changes of every run of the project as Server-Sent Events (Last-Event-ID resumes; frames may repeat)", true, 200),
    ("get", "/runs/{id}", "A run: status, tasks, outputs, cost, eventSeq", true, 200),
    ("post", "/runs/{id}/cancel", "Cancel a run", true, 202),
    ("get", "/runs/{id}/events", "A run's events after a seq", true, 200),
    ("get", "/runs/{id}/graph", "A run's task graph laid out for drawing: nodes {id, status, rank, order, group, parent}, groups {id, size, counts}, edges [from, to] as node indices", true, 200),
    ("get", "/runs/{id}/stream", "A run's events as Server-Sent Events (Last-Event-ID resumes)", true, 200),
    ("get", "/runs/{id}/artifacts", "A run's artifacts", true, 200),
    ("post", "/runs/{id}/checkpoints", "Checkpoint a run (succeeded tasks, outputs, artifacts, workspace manifest)", true, 201),
    ("get", "/runs/{id}/checkpoints", "A run's checkpoints", true, 200),
    ("post", "/checkpoints/{id}/restore", "Start a new run from a checkpoint (restored tasks are not run again)", true, 201),
    ("get", "/runs/{id}/tasks/{task}", "One task: its row, its spec as written, its events (attempts, agent scores, gate results, model routing and calls) and its artifacts", true, 200),
    ("post", "/runs/{id}/tasks/{task}/approval", "Approve or reject a task waiting at a manual gate (409 not waiting, 403 not an approver)", true, 200),
    ("get", "/approvals", "The project's manual approvals waiting for a decision, oldest first (run, task, approvers, deadline)", true, 200),
    ("get", "/runs/{id}/questions", "A run's typed questions, oldest first (status: pending, answered, skipped, no_default)", true, 200),
    ("post", "/runs/{id}/questions/{q}/answer", "Answer a question: {value} or {idk: true} (422 a rule broken, 409 answered already)", true, 200),
    ("get", "/questions", "The project's typed questions, oldest first (status)", true, 200),
    ("post", "/gather", "Start a gathering run from a questionnaire ({questionnaire, path?, answers?}; 422 listing its problems)", true, 201),
    ("post", "/prps", "Store a PRP (JSON, or YAML by Content-Type; 422 listing its problems at their key paths)", true, 201),
    ("get", "/prps/{id}", "One stored PRP with its confidence", true, 200),
    ("post", "/prps/{id}/execute", "Run a stored PRP ({path?, inPlace?, rollback?: step|all|none})", true, 201),
    ("get", "/runs/{id}/report", "A PRP run step by step: status, attempts, gates, rollback, tokens, cost, files; totals; confidence", true, 200),
    ("post", "/runs/{id}/fork", "Fork a run at a task, with a JSON merge patch on the plan", true, 201),
    ("get", "/runs/{id}/artifacts/{name}", "One artifact's content", true, 200),
    ("get", "/templates", "Templates the project sees, most used first (category)", true, 200),
    ("post", "/templates", "Create a template", true, 201),
    ("get", "/templates/{id}", "One template", true, 200),
    ("post", "/templates/{id}/instantiate", "Make a run from a template; Idempotency-Key makes retries safe", true, 201),
    ("get", "/agents", "Agents with limits and live load", true, 200),
    ("get", "/analytics/usage", "Model usage and cost of the project (startDate, endDate, groupBy)", true, 200),
    ("get", "/metrics", "Prometheus metrics", true, 200),
    ("post", "/session", "Log in the dashboard: {key} sets an HttpOnly session cookie the API accepts like a key; answers the project, scopes, csrf token and expiry", false, 201),
    ("get", "/session", "Who the caller is; with the session cookie, the csrf token its changes carry in X-Nofx-Csrf", true, 200),
    ("delete", "/session", "Log out: ends the cookie's session and clears the cookie", true, 200),
];

/// The document.
pub fn document() -> Value {
    let error = json!({"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut paths = Map::new();
    for (method, path, summary, authed, ok) in OPERATIONS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut responses = Map::new();
        responses.insert(ok.to_string(), json!({"description": "Success"}));
        responses.insert("default".into(), error.clone());
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": responses,
        });
        if !authed {
            op["security"] = json!([]);
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "nofx", "version": env!("CARGO_PKG_VERSION"),
                 "description": "The HTTP API of `nofx serve`. Every operation but /health, /ready, /openapi.json and POST /session needs `Authorization: Bearer KEY` or the dashboard's session cookie (whose changes carry `X-Nofx-Csrf`); a key sees only its project."},
        "components": {
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        },
        "security": [{"key": []}],
        "paths": paths,
    })
}
