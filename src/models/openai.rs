//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with a bearer key (which
//! local servers may ignore); the system prompt is the first message; usage comes back as
//! `prompt_tokens`/`completion_tokens`; errors are `{"error":{"message","type","code"}}`.

use super::{
    exchange, http_client, malformed, read_stream, send, tool_input, ApiKey, Completion,
    CompletionRequest, ErrorKind, ModelError, Provider, Streamed, Timeouts, ToolCall,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An OpenAI-compatible client.
pub struct OpenAi {
    name: String,
    base_url: String,
    key: Option<ApiKey>,
    http: reqwest::Client,
}

impl OpenAi {
    /// A client for `base_url` (e.g. `https://api.openai.com/v1`, or a local server's `/v1`).
    /// Local servers may need no key.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        key: Option<ApiKey>,
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
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct Answer {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireCall>,
}

#[derive(Deserialize)]
struct WireCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

/// `usage.prompt_tokens_details`: of the prompt tokens, those read from the prompt cache.
#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

fn classify(status: u16, detail: Option<&ErrorDetail>) -> ErrorKind {
    let code = detail
        .and_then(|d| d.code.as_ref())
        .and_then(|c| c.as_str())
        .unwrap_or("");
    let kind = detail.and_then(|d| d.kind.as_deref()).unwrap_or("");
    if code == "context_length_exceeded"
        || detail.is_some_and(|d| d.message.contains("maximum context length"))
    {
        return ErrorKind::ContextTooLong;
    }
    match (kind, code) {
        (_, "rate_limit_exceeded") => ErrorKind::RateLimited,
        ("insufficient_quota", _) | (_, "invalid_api_key") => ErrorKind::Auth,
        _ => ErrorKind::from_status(status),
    }
}

fn read_error(status: u16, body: &[u8]) -> (ErrorKind, String) {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let message = match &detail {
        Some(d) => d.message.clone(),
        None => format!("HTTP {status}"),
    };
    (classify(status, detail.as_ref()), message)
}

impl OpenAi {
    fn call(&self, req: &CompletionRequest, stream: bool) -> reqwest::RequestBuilder {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if let Some(s) = &req.system {
            messages.push(json!({"role": "system", "content": s}));
        }
        for m in &req.messages {
            // Results are messages of their own (`role: tool`), before any text.
            for r in &m.tool_results {
                messages.push(json!({"role": "tool", "tool_call_id": r.id, "content": r.content}));
            }
            match m.role {
                super::Role::User if m.content.is_empty() && !m.tool_results.is_empty() => {}
                super::Role::User => messages.push(json!({"role": "user", "content": m.content})),
                super::Role::Assistant if m.tool_calls.is_empty() => {
                    messages.push(json!({"role": "assistant", "content": m.content}));
                }
                super::Role::Assistant => {
                    let calls: Vec<Value> = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            let arguments = match &c.input {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            };
                            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments}})
                        })
                        .collect();
                    let content = if m.content.is_empty() {
                        Value::Null
                    } else {
                        Value::String(m.content.clone())
                    };
                    messages.push(
                        json!({"role": "assistant", "content": content, "tool_calls": calls}),
                    );
                }
            }
        }
        let tools = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}})
            })
            .collect();
        let body = Body {
            model: &req.model,
            messages,
            tools,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        let mut call = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&body);
        if let Some(k) = &self.key {
            call = call.bearer_auth(k.expose());
        }
        call
    }

    /// Applies one streamed chunk; `Ok(true)` at `[DONE]`.
    fn on_chunk(
        &self,
        st: &mut Streamed,
        data: &str,
        on_text: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<bool, ModelError> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let v: serde_json::Value = serde_json::from_str(data)
            .map_err(|e| malformed(&self.name, 200, "a chat completion chunk", e))?;
        if let Some(err) = v.get("error") {
            let detail: Option<ErrorDetail> = serde_json::from_value(err.clone()).ok();
            let message = detail
                .as_ref()
                .map_or_else(|| data.to_string(), |d| d.message.clone());
            return Err(ModelError::new(
                classify(200, detail.as_ref()),
                format!("{}: {message}", self.name),
            ));
        }
        if let Some(m) = v["model"].as_str() {
            st.model = Some(m.to_string());
        }
        if let Some(c) = v["choices"].get(0) {
            if let Some(t) = c["delta"]["content"].as_str() {
                st.text.push_str(t);
                on_text(t);
            }
            if let Some(calls) = c["delta"]["tool_calls"].as_array() {
                for call in calls {
                    let slot = st
                        .calls
                        .entry(call["index"].as_u64().unwrap_or(0))
                        .or_default();
                    if let Some(id) = call["id"].as_str() {
                        slot.0 = id.to_string();
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        slot.1.push_str(name);
                    }
                    if let Some(args) = call["function"]["arguments"].as_str() {
                        slot.2.push_str(args);
                    }
                }
            }
            if let Some(r) = c["finish_reason"].as_str() {
                st.stop_reason = Some(r.to_string());
            }
        }
        if let (Some(i), Some(o)) = (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64(),
        ) {
            st.usage = Some((i, o));
            let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64();
            st.cache = (cached.unwrap_or(0), 0);
        }
        Ok(false)
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        req: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(async move {
            let (status, bytes) = exchange(&self.name, self.call(req, false), read_error).await?;
            let malformed = |why: &str| malformed(&self.name, status, "a chat completion", why);
            let answer: Answer =
                serde_json::from_slice(&bytes).map_err(|e| malformed(&e.to_string()))?;
            let choice = answer
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| malformed("no choices"))?;
            let usage = answer.usage.ok_or_else(|| malformed("no usage"))?;
            let tool_calls = choice
                .message
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.function.name,
                    input: tool_input(&c.function.arguments),
                })
                .collect();
            Ok(Completion {
                text: choice.message.content.unwrap_or_default(),
                model: answer.model.unwrap_or_else(|| req.model.clone()),
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                cache_read_tokens: usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
                cache_write_tokens: 0,
                stop_reason: choice.finish_reason,
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
                self.on_chunk(st, data, on_text)
            })
            .await
        })
    }
}
