//! Local HTTP servers that speak a provider's wire format: each answers a path with scripted
//! replies in order and keeps every request it received (headers, body) for the test to check.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
    pub delay: Duration,
}

pub fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// An OpenAI chat completion answering `text`.
pub fn openai_text(text: &str, prompt_tokens: u64, completion_tokens: u64) -> Reply {
    reply(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        }),
    )
}

/// An OpenAI chat completion asking for `calls` (id, function name, arguments), with
/// `cached` of its `prompt_tokens` read from the prompt cache.
pub fn openai_calls(calls: &[(&str, &str, Value)], prompt_tokens: u64, cached: u64) -> Reply {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    reply(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        }),
    )
}

/// An OpenAI chat completion answering `text`, with `cached` of its `prompt_tokens` read
/// from the prompt cache.
pub fn openai_answer(text: &str, prompt_tokens: u64, cached: u64) -> Reply {
    reply(
        200,
        json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 10, "total_tokens": prompt_tokens + 10,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        }),
    )
}

/// The last message of a request's conversation.
pub fn last_message(body: &Value) -> Value {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null)
}

/// The messages of a chat completion request other than the system prompt.
pub fn conversation_len(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] != "system").count())
}

/// An Anthropic Messages API answer of `text`.
pub fn anthropic_text(text: &str, input_tokens: u64, output_tokens: u64) -> Reply {
    reply(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "served-model",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
        }),
    )
}

/// A server-sent-events body.
pub fn sse(events: &[(&str, Value)]) -> Reply {
    let mut body = String::new();
    for (name, data) in events {
        if !name.is_empty() {
            body.push_str(&format!("event: {name}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    Reply {
        status: 200,
        headers: vec![("content-type", "text/event-stream")],
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct Script {
    pub replies: Arc<Mutex<VecDeque<Reply>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(State(s): State<Script>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen.lock().unwrap().push(Seen {
        headers,
        body: parsed,
    });
    let r = s
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .expect("the test scripted enough replies");
    tokio::time::sleep(r.delay).await;
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Starts a server on 127.0.0.1:0 answering `path` with `replies` in order.
pub async fn server(path: &str, replies: Vec<Reply>) -> (String, Script) {
    let script = Script {
        replies: Arc::new(Mutex::new(replies.into())),
        seen: Default::default(),
    };
    let app = axum::Router::new()
        .route(path, post(answer))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), script)
}

type Respond = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Responder {
    respond: Respond,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn respond(State(s): State<Responder>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let r = (s.respond)(&parsed);
    s.seen.lock().unwrap().push(Seen {
        headers,
        body: parsed,
    });
    tokio::time::sleep(r.delay).await;
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Starts a server on 127.0.0.1:0 answering `path` with what `f` makes of each request's
/// body (a provider whose answers depend on what it is asked); keeps every request.
pub async fn responder(
    path: &str,
    f: impl Fn(&Value) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let state = Responder {
        respond: Arc::new(f),
        seen: Default::default(),
    };
    let seen = state.seen.clone();
    let app = axum::Router::new()
        .route(path, post(respond))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}
