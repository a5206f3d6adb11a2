//! Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`; the system prompt is a top-level field; usage comes back as
//! `input_tokens`/`output_tokens` (with `cache_creation_input_tokens` and
//! `cache_read_input_tokens` apart); errors are `{"type":"error","error":{"type","message"}}`.
//! Prompt caching: the system prompt, the last tool definition and the last block of the last
//! message carry `cache_control`, so each turn of a conversation reads the previous turns'
//! prefix from the cache.

use super::{
    exchange, http_client, malformed, read_stream, send, ApiKey, Completion, CompletionRequest,
    ErrorKind, Message, ModelError, Provider, Streamed, Timeouts, ToolCall, ToolSpec,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The API version nofx speaks.
pub const API_VERSION: &str = "2023-06-01";

/// An Anthropic client.
pub struct Anthropic {
    name: String,
    base_url: String,
    key: ApiKey,
    http: reqwest::Client,
}

impl Anthropic {
    /// A client for `base_url` (e.g. `https://api.anthropic.com`), named `name` in messages.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        key: ApiKey,
        timeouts: Timeouts,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            name: name.into(),
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            http: http_client(timeouts)?,
        })
    }
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<serde_json::Value>,
    messages: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Deserialize)]
struct Answer {
    model: Option<String>,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// A cache breakpoint: the prefix up to and including the block it marks is cached.
fn ephemeral() -> serde_json::Value {
    json!({"type": "ephemeral"})
}

/// The system prompt as one text block marked for the prompt cache.
fn wire_system(system: Option<&str>) -> Option<serde_json::Value> {
    system.map(|s| json!([{"type": "text", "text": s, "cache_control": ephemeral()}]))
}

/// The messages in the Messages API's shape: content blocks (`text`, `tool_use`,
/// `tool_result`), the same for a message wherever it stands in the conversation so that
/// each request repeats the previous one's prefix byte for byte. The last message's last
/// block is marked for the prompt cache.
fn wire_messages(messages: &[Message]) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut blocks = Vec::new();
            // Results come first in a user message, as the API asks.
            for r in &m.tool_results {
                blocks.push(json!({
                    "type": "tool_result",
                    "tool_use_id": r.id,
                    "content": r.content,
                    "is_error": r.is_error,
                }));
            }
            if !m.content.is_empty() || (m.tool_calls.is_empty() && m.tool_results.is_empty()) {
                blocks.push(json!({"type": "text", "text": m.content}));
            }
            for c in &m.tool_calls {
                let input = if c.input.is_object() {
                    c.input.clone()
                } else {
                    json!({})
                };
                blocks
                    .push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
            }
            json!({"role": m.role, "content": blocks})
        })
        .collect();
    if let Some(block) = out
        .last_mut()
        .and_then(|m| m["content"].as_array_mut())
        .and_then(|b| b.last_mut())
    {
        block["cache_control"] = ephemeral();
    }
    out
}

/// The tool definitions in the Messages API's shape, the last one marked for the prompt
/// cache (which caches them all).
fn wire_tools(tools: &[ToolSpec]) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    if let Some(last) = out.last_mut() {
        last["cache_control"] = ephemeral();
    }
    out
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

fn classify(status: u16, detail: Option<&ErrorDetail>) -> ErrorKind {
    match detail.map(|d| (d.kind.as_str(), d.message.to_ascii_lowercase())) {
        Some(("rate_limit_error", _)) => ErrorKind::RateLimited,
        Some(("overloaded_error", _)) => ErrorKind::Overloaded,
        Some(("authentication_error" | "permission_error", _)) => ErrorKind::Auth,
        Some(("request_too_large", _)) => ErrorKind::ContextTooLong,
        Some(("invalid_request_error", m)) if m.contains("too long") || m.contains("context") => {
            ErrorKind::ContextTooLong
        }
        Some(("api_error", _)) => ErrorKind::Server,
        _ => ErrorKind::from_status(status),
    }
}

fn read_error(status: u16, body: &[u8]) -> (ErrorKind, String) {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let message = match &detail {
        Some(d) => format!("{} ({})", d.message, d.kind),
        None => format!("HTTP {status}"),
    };
    (classify(status, detail.as_ref()), message)
}

impl Anthropic {
    fn call(&self, req: &CompletionRequest, stream: bool) -> reqwest::RequestBuilder {
        let body = Body {
            model: &req.model,
            max_tokens: req.max_tokens,
            system: wire_system(req.system.as_deref()),
            messages: wire_messages(&req.messages),
            tools: wire_tools(&req.tools),
            temperature: req.temperature,
            stream,
        };
        self.http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", API_VERSION)
            .json(&body)
    }

    /// Applies one streamed event; `Ok(true)` at `message_stop`.
    fn on_event(
        &self,
        st: &mut Streamed,
        data: &str,
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool, ModelError> {
        let v: serde_json::Value = serde_json::from_str(data)
            .map_err(|e| malformed(&self.name, 200, "a Messages API stream event", e))?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let m = &v["message"];
                st.model = m["model"].as_str().map(str::to_string);
                let u = &m["usage"];
                let read = u["cache_read_input_tokens"].as_u64().unwrap_or(0);
                let write = u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                st.cache = (read, write);
                st.usage = Some((
                    u["input_tokens"].as_u64().unwrap_or(0) + read + write,
                    u["output_tokens"].as_u64().unwrap_or(0),
                ));
            }
            "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                let t = v["delta"]["text"].as_str().unwrap_or_default();
                st.text.push_str(t);
                on_text(t);
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let b = &v["content_block"];
                st.calls.insert(
                    v["index"].as_u64().unwrap_or(0),
                    (
                        b["id"].as_str().unwrap_or_default().to_string(),
                        b["name"].as_str().unwrap_or_default().to_string(),
                        String::new(),
                    ),
                );
            }
            "content_block_delta" if v["delta"]["type"] == "input_json_delta" => {
                let part = v["delta"]["partial_json"].as_str().unwrap_or_default();
                if let Some(call) = st.calls.get_mut(&v["index"].as_u64().unwrap_or(0)) {
                    call.2.push_str(part);
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    let input = st.usage.map_or(0, |(i, _)| i);
                    st.usage = Some((input, n));
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    st.stop_reason = Some(r.to_string());
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                let detail: Option<ErrorDetail> = serde_json::from_value(v["error"].clone()).ok();
                let message = detail.as_ref().map_or_else(
                    || data.to_string(),
                    |d| format!("{} ({})", d.message, d.kind),
                );
                return Err(ModelError::new(
                    classify(200, detail.as_ref()),
                    format!("{}: {message}", self.name),
                ));
            }
            _ => {}
        }
        Ok(false)
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        req: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(async move {
            let (status, bytes) = exchange(&self.name, self.call(req, false), read_error).await?;
            let answer: Answer = serde_json::from_slice(&bytes)
                .map_err(|e| malformed(&self.name, status, "a Messages API response", e))?;
            let text = answer
                .content
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect::<Vec<_>>()
                .join("");
            let tool_calls = answer
                .content
                .iter()
                .filter(|b| b.kind == "tool_use")
                .map(|b| ToolCall {
                    id: b.id.clone().unwrap_or_default(),
                    name: b.name.clone().unwrap_or_default(),
                    input: b.input.clone().unwrap_or_else(|| json!({})),
                })
                .collect();
            Ok(Completion {
                text,
                model: answer.model.unwrap_or_else(|| req.model.clone()),
                input_tokens: answer.usage.input_tokens
                    + answer.usage.cache_read_input_tokens
                    + answer.usage.cache_creation_input_tokens,
                output_tokens: answer.usage.output_tokens,
                cache_read_tokens: answer.usage.cache_read_input_tokens,
                cache_write_tokens: answer.usage.cache_creation_input_tokens,
                stop_reason: answer.stop_reason,
                tool_calls,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        req: &'a CompletionRequest,
        on_text: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(async move {
            let resp = send(&self.name, self.call(req, true), read_error).await?;
            read_stream(&self.name, resp, &req.model, |st, data| {
                self.on_event(st, data, on_text)
            })
            .await
        })
    }
}
