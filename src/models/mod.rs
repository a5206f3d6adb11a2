//! Models: LLM providers behind one trait. Anthropic's Messages API and OpenAI-compatible chat
//! completions (which also covers local servers such as Ollama, vLLM or llama.cpp) are the two
//! real implementations; `retry` adds bounded retries with backoff on transient failures.
//! The catalogue (`catalog.rs`), routing rules (`routing.rs`) and budgets (`budget.rs`) make
//! up the configuration (`config.rs`) the gateway (`gateway.rs`) is built from; every model
//! call goes through the gateway.
//! Keys are held in [`ApiKey`], which never prints its value.

mod anthropic;
pub mod budget;
pub mod catalog;
mod config;
mod error;
pub mod gateway;
mod openai;
mod retry;
pub mod routing;

pub use anthropic::Anthropic;
pub use config::ModelsConfig;
pub use error::{ErrorKind, ModelError};
pub use gateway::{Answer, Ask, CallError, CallSink, Caller, Models};
pub use openai::OpenAi;
pub use retry::{complete_with_retry, RetryPolicy, Tried};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// An API key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// Who speaks in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The caller.
    User,
    /// The model.
    Assistant,
}

/// One message of a conversation: text, and (for tool-calling conversations) the calls an
/// assistant message asked for or the results a user message gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
    /// The tools the model asked to call (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The results of the previous message's calls (user messages), in the calls' order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<ToolResult>,
}

/// A tool a model may call, as the provider is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name (letters, digits, `_` and `-`: what providers accept).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its input (an object).
    pub input_schema: serde_json::Value,
}

pub use crate::domain::ToolCall;

/// What a call gave, handed back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call's id.
    pub id: String,
    /// Its output (or what went wrong), as text.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
        }
    }

    /// A user message giving back the results of the previous message's calls.
    pub fn results(results: Vec<ToolResult>) -> Self {
        Self {
            role: Role::User,
            content: String::new(),
            tool_calls: Vec::new(),
            tool_results: results,
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
        }
    }
}

/// A request for one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The provider's model name.
    pub model: String,
    /// System prompt.
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Upper bound on output tokens.
    pub max_tokens: u32,
    /// Sampling temperature, when set.
    pub temperature: Option<f32>,
    /// The tools the model may call (none: a plain completion).
    pub tools: Vec<ToolSpec>,
}

/// A completion and its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The answer's text.
    pub text: String,
    /// The model that answered (as the provider names it).
    pub model: String,
    /// Input tokens billed, those read from or written to the prompt cache included.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Why the model stopped (`end_turn`, `tool_use`, `max_tokens`, `stop`, `tool_calls`,
    /// `length`, …).
    pub stop_reason: Option<String>,
    /// The calls the model asks for, in its order (empty: a final answer).
    pub tool_calls: Vec<ToolCall>,
}

/// Timeouts of a provider client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// The whole request, answer included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
        }
    }
}

/// An LLM provider.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name in `models.toml`, e.g. `anthropic`.
    fn name(&self) -> &str;

    /// Asks for one completion (one HTTP request; retries are the caller's).
    fn complete<'a>(
        &'a self,
        req: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>>;

    /// Asks for one completion in streaming mode, handing each piece of text to `on_text` as
    /// it arrives. A stream that breaks off is an error carrying the usage billed so far.
    /// The default makes a plain call and hands over the whole text at once.
    fn stream<'a>(
        &'a self,
        req: &'a CompletionRequest,
        on_text: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(async move {
            let c = self.complete(req).await?;
            on_text(&c.text);
            Ok(c)
        })
    }
}

pub(crate) fn http_client(t: Timeouts) -> Result<reqwest::Client, ModelError> {
    reqwest::Client::builder()
        .connect_timeout(t.connect)
        .timeout(t.request)
        .build()
        .map_err(|e| {
            ModelError::new(
                ErrorKind::Connect,
                format!("cannot build the HTTP client: {e}"),
            )
        })
}

/// Sends a request. A non-2xx answer becomes a [`ModelError`]: `classify` reads the
/// provider's error body into a kind and a message.
pub(crate) async fn send(
    provider: &str,
    call: reqwest::RequestBuilder,
    classify: impl FnOnce(u16, &[u8]) -> (ErrorKind, String),
) -> Result<reqwest::Response, ModelError> {
    let resp = call
        .send()
        .await
        .map_err(|e| ModelError::from_transport(provider, &e))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let wait = retry_after(resp.headers());
    let body = resp
        .bytes()
        .await
        .map_err(|e| ModelError::from_transport(provider, &e))?;
    let (kind, message) = classify(status, &body);
    Err(ModelError {
        kind,
        message: format!("{provider}: {message}"),
        status: Some(status),
        retry_after: wait,
        partial_usage: None,
    })
}

/// Sends a request and reads the whole answer (see [`send`]).
pub(crate) async fn exchange(
    provider: &str,
    call: reqwest::RequestBuilder,
    classify: impl FnOnce(u16, &[u8]) -> (ErrorKind, String),
) -> Result<(u16, bytes::Bytes), ModelError> {
    let resp = send(provider, call, classify).await?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ModelError::from_body(provider, &e))?;
    Ok((status, body))
}

/// What a streamed answer has said so far.
#[derive(Default)]
pub(crate) struct Streamed {
    pub text: String,
    pub model: Option<String>,
    /// Tokens (input, output) billed so far.
    pub usage: Option<(u64, u64)>,
    /// Input tokens (read from, written to) the prompt cache.
    pub cache: (u64, u64),
    pub stop_reason: Option<String>,
    /// Calls streamed so far, by the provider's index: (id, name, input text so far).
    pub calls: std::collections::BTreeMap<u64, (String, String, String)>,
}

impl Streamed {
    /// The streamed calls, their input text read as JSON (or kept as text when it is not).
    fn take_calls(&mut self) -> Vec<ToolCall> {
        std::mem::take(&mut self.calls)
            .into_values()
            .map(|(id, name, input)| ToolCall {
                id,
                name,
                input: tool_input(&input),
            })
            .collect()
    }
}

/// A call's input as a model wrote it: JSON when it is (an empty input is `{}`), else the text.
pub(crate) fn tool_input(text: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// Reads a server-sent-events answer, handing each event's data to `on_event`, which
/// updates the answer so far and returns `Ok(true)` once the stream is complete. A stream
/// that ends (or breaks) before that is an `interrupted` error; every error carries the
/// usage billed so far.
pub(crate) async fn read_stream(
    provider: &str,
    resp: reqwest::Response,
    model: &str,
    mut on_event: impl FnMut(&mut Streamed, &str) -> Result<bool, ModelError>,
) -> Result<Completion, ModelError> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let mut st = Streamed::default();
    let mut events = resp.bytes_stream().eventsource();
    let cut = |st: &Streamed, why: String| ModelError {
        kind: ErrorKind::Interrupted,
        message: format!("{provider}: the stream broke off: {why}"),
        status: None,
        retry_after: None,
        partial_usage: st.usage,
    };
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| cut(&st, e.to_string()))?;
        match on_event(&mut st, &ev.data) {
            Ok(true) => {
                let (input, output) = st
                    .usage
                    .ok_or_else(|| malformed(provider, 200, "a complete stream", "no usage"))?;
                let tool_calls = st.take_calls();
                return Ok(Completion {
                    text: st.text,
                    model: st.model.unwrap_or_else(|| model.to_string()),
                    input_tokens: input,
                    output_tokens: output,
                    cache_read_tokens: st.cache.0,
                    cache_write_tokens: st.cache.1,
                    stop_reason: st.stop_reason,
                    tool_calls,
                });
            }
            Ok(false) => {}
            Err(mut e) => {
                e.partial_usage = st.usage;
                return Err(e);
            }
        }
    }
    Err(cut(&st, "it ended before the answer was complete".into()))
}

/// A 2xx answer that is not what the provider's format promises.
pub(crate) fn malformed(
    provider: &str,
    status: u16,
    what: &str,
    why: impl fmt::Display,
) -> ModelError {
    ModelError {
        kind: ErrorKind::MalformedResponse,
        message: format!("{provider}: the answer is not {what}: {why}"),
        status: Some(status),
        retry_after: None,
        partial_usage: None,
    }
}

/// The body of a model's answer: the content of its first fenced code block (the language
/// tag after the opening fence is dropped), or the whole text when it has none.
///
/// ```
/// assert_eq!(nofx::models::answer_body("Here:\n```json\n{\"a\": 1}\n```\nDone."), "{\"a\": 1}");
/// assert_eq!(nofx::models::answer_body("  {\"a\": 1} "), "{\"a\": 1}");
/// ```
pub fn answer_body(text: &str) -> &str {
    let Some(open) = text.find("```") else {
        return text.trim();
    };
    let after = &text[open + 3..];
    let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
    let body = &after[body_start..];
    match body.find("```") {
        Some(close) => body[..close].trim(),
        None => body.trim(),
    }
}

/// Parses a `Retry-After` header given in seconds (fractions allowed).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(600.0)))
}
