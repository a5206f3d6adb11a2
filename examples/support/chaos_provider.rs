//! A fake model provider speaking the OpenAI chat-completions wire format (plain and streamed
//! answers, text and tool calls) that answers a chosen share of requests with the failures
//! real providers give: 429 with `Retry-After`, 529, 500, no answer in time, malformed JSON,
//! and answers cut off midway. It keeps a record of every request and how it was answered, so
//! a checker can hold nofx's usage rows against what the provider actually saw.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often each failure is given (shares of all requests, 0 to 1) and how it is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// 429 with a `Retry-After` header.
    pub rate_limited: f64,
    /// What `Retry-After` says.
    pub retry_after: Duration,
    /// 529 overloaded.
    pub overloaded: f64,
    /// 500.
    pub server_error: f64,
    /// No answer until `hang` has passed (longer than the client waits).
    pub timeout: f64,
    /// How long a request given no answer in time is held.
    pub hang: Duration,
    /// 200 with a body that is not JSON (a stream: a chunk that is not JSON).
    pub malformed: f64,
    /// 200 whose body stops midway and the connection closes.
    pub cut: f64,
}

impl Faults {
    /// No failures.
    pub const NONE: Faults = Faults {
        rate_limited: 0.0,
        retry_after: Duration::ZERO,
        overloaded: 0.0,
        server_error: 0.0,
        timeout: 0.0,
        hang: Duration::ZERO,
        malformed: 0.0,
        cut: 0.0,
    };

    fn pick(&self, roll: f64) -> Answered {
        let mut edge = 0.0;
        for (share, answer) in [
            (self.rate_limited, Answered::RateLimited),
            (self.overloaded, Answered::Overloaded),
            (self.server_error, Answered::ServerError),
            (self.timeout, Answered::Timeout),
            (self.malformed, Answered::Malformed),
            (self.cut, Answered::Cut),
        ] {
            edge += share;
            if roll < edge {
                return answer;
            }
        }
        Answered::Ok
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answered {
    Ok,
    RateLimited,
    Overloaded,
    ServerError,
    Timeout,
    Malformed,
    Cut,
}

impl Answered {
    /// The `error_type` nofx records for an attempt answered this way (`None`: a success).
    pub fn error_type(self) -> Option<&'static str> {
        match self {
            Self::Ok => None,
            Self::RateLimited => Some("rate_limited"),
            Self::Overloaded => Some("overloaded"),
            Self::ServerError => Some("server_error"),
            Self::Timeout => Some("timeout"),
            Self::Malformed => Some("malformed_response"),
            Self::Cut => Some("interrupted"),
        }
    }

    /// The name in `/stats`.
    pub fn name(self) -> &'static str {
        self.error_type().unwrap_or("ok")
    }
}

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct Served {
    /// When it arrived.
    pub at: Instant,
    /// A hash of the request body: a retry of the same attempt sends the same body.
    pub key: u64,
    /// The model asked for.
    pub model: String,
    /// Whether the answer was asked to stream.
    pub stream: bool,
    /// How it was answered.
    pub answered: Answered,
}

struct Inner {
    faults: Faults,
    rng: Mutex<StdRng>,
    served: Mutex<Vec<Served>>,
}

/// The provider: its router and its record.
#[derive(Clone)]
pub struct ChaosProvider {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ChaosProvider {
    /// A provider giving `faults`, its choices drawn from `seed`.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                faults,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                served: Mutex::new(Vec::new()),
            }),
        }
    }

    /// `POST /v1/chat/completions`, and `GET /stats` (requests by how they were answered).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/stats", get(stats))
            .with_state(self.clone())
    }

    /// Serves on 127.0.0.1 at `port` (0: any free port); the base URL to configure
    /// (`…/v1`).
    pub async fn start(&self, port: u16) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("the fake provider stopped: {e}");
            }
        });
        Ok(format!("http://{addr}/v1"))
    }

    /// Every request so far, in order of arrival.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.inner.served).clone()
    }

    /// Requests so far by how they were answered (`/stats`'s `answered`).
    pub fn tally(&self) -> BTreeMap<&'static str, u64> {
        let mut t = BTreeMap::new();
        for s in lock(&self.inner.served).iter() {
            *t.entry(s.answered.name()).or_insert(0) += 1;
        }
        t
    }

    /// Requests sent again sooner than a 429's `Retry-After` asked, each described.
    pub fn retry_after_violations(&self) -> Vec<String> {
        let served = self.served();
        let wait = self.inner.faults.retry_after;
        let mut next_after: std::collections::HashMap<u64, Instant> = Default::default();
        let mut bad = Vec::new();
        for s in &served {
            if let Some(earliest) = next_after.remove(&s.key) {
                if s.at < earliest {
                    bad.push(format!(
                        "a request for {} came {:?} early after a 429",
                        s.model,
                        earliest - s.at
                    ));
                }
            }
            if s.answered == Answered::RateLimited {
                next_after.insert(s.key, s.at + wait);
            }
        }
        bad
    }
}

async fn stats(State(p): State<ChaosProvider>) -> Response {
    let requests: u64 = p.tally().values().sum();
    axum::Json(json!({"requests": requests, "answered": p.tally()})).into_response()
}

fn error(status: u16, kind: &str, message: &str, code: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// A 200 whose body is `head` and then, a moment later, a broken connection.
fn cut_after(head: String, content_type: &'static str) -> Response {
    use futures::StreamExt;
    let parts =
        futures::stream::iter([Ok(Bytes::from(head))]).chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut by the fake provider",
            ))
        }));
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(parts))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Where the first half of `s` ends (a character boundary).
fn half(s: &str) -> usize {
    (0..=s.len() / 2)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// What a well-behaved model would answer: a call of the first tool offered when the
/// conversation has no tool result yet, else text.
fn good(body: &Value) -> (Option<(String, String)>, String) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let tool = body["tools"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["function"]["name"].as_str());
    if let (Some(name), false) = (tool, last["role"] == "tool") {
        let args = json!({"text": "checked by the fake provider"}).to_string();
        return (Some((name.to_string(), args)), String::new());
    }
    let asked: String = last["content"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect();
    (None, format!("Answered: {asked}"))
}

async fn complete(State(p): State<ChaosProvider>, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = parsed["model"].as_str().unwrap_or("unknown").to_string();
    let stream = parsed["stream"] == true;
    let key = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        h.finish()
    };
    let answered = {
        let roll: f64 = lock(&p.inner.rng).random();
        p.inner.faults.pick(roll)
    };
    lock(&p.inner.served).push(Served {
        at: Instant::now(),
        key,
        model: model.clone(),
        stream,
        answered,
    });
    let faults = p.inner.faults;
    match answered {
        Answered::RateLimited => {
            let mut r = error(
                429,
                "requests",
                "Rate limit reached for requests",
                json!("rate_limit_exceeded"),
            );
            let secs = faults.retry_after.as_secs_f64().to_string();
            if let Ok(v) = secs.parse() {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        Answered::Overloaded => return error(529, "overloaded_error", "Overloaded", Value::Null),
        Answered::ServerError => {
            return error(
                500,
                "server_error",
                "The server had an error while processing your request.",
                Value::Null,
            )
        }
        Answered::Timeout => tokio::time::sleep(faults.hang).await,
        Answered::Ok | Answered::Malformed | Answered::Cut => {}
    }
    let (call, text) = good(&parsed);
    let prompt_tokens = tokens(&parsed["messages"].to_string());
    let max = parsed["max_tokens"].as_u64().unwrap_or(u64::MAX);
    let completion_tokens = tokens(&text).min(max);
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens});
    if stream {
        let mut chunks = Vec::new();
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-chaos", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        match &call {
            Some((name, args)) => chunks.push(chunk(
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_chaos", "type": "function",
                       "function": {"name": name, "arguments": args}}]}),
                Value::Null,
            )),
            None => {
                let cut = half(&text);
                chunks.push(chunk(json!({"role": "assistant", "content": &text[..cut]}), Value::Null));
                chunks.push(chunk(json!({"content": &text[cut..]}), Value::Null));
            }
        }
        chunks.push(chunk(json!({}), json!(finish)));
        chunks.push(
            json!({"id": "chatcmpl-chaos", "object": "chat.completion.chunk", "model": model,
                           "choices": [], "usage": usage}),
        );
        let events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        return match answered {
            Answered::Cut => cut_after(events[0].clone(), "text/event-stream"),
            Answered::Malformed => {
                let body = format!("{}data: {{\"choices\": [{{\"delta\"\n\n", events[0]);
                ([("content-type", "text/event-stream")], body).into_response()
            }
            _ => {
                let body = format!("{}data: [DONE]\n\n", events.concat());
                ([("content-type", "text/event-stream")], body).into_response()
            }
        };
    }
    let message = match &call {
        Some((name, args)) => json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_chaos", "type": "function", "function": {"name": name, "arguments": args}}]}),
        None => json!({"role": "assistant", "content": text}),
    };
    let answer =
        json!({"id": "chatcmpl-chaos", "object": "chat.completion", "created": 0, "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": usage})
        .to_string();
    let head = answer[..half(&answer)].to_string();
    match answered {
        Answered::Cut => cut_after(head, "application/json"),
        Answered::Malformed => ([("content-type", "application/json")], head).into_response(),
        _ => ([("content-type", "application/json")], answer).into_response(),
    }
}
