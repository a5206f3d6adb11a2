//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with a bearer key (which
//! local servers may ignore); the system prompt is the first message; usage comes back as
//! `prompt_tokens`/`completion_tokens`; errors are `{"error":{"message","type","code"}}`.

use super::{
    exchange, http_client, malformed, read_stream, send, ApiKey, Completion, CompletionRequest,
    ErrorKind, ModelError, Provider, Streamed, Timeouts,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

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
    messages: Vec<Msg<'a>>,
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

#[derive(Serialize)]
struct Msg<'a> {
    role: &'a str,
    content: &'a str,
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
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
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
            messages.push(Msg {
                role: "system",
                content: s,
            });
        }
        for m in &req.messages {
            let role = match m.role {
                super::Role::User => "user",
                super::Role::Assistant => "assistant",
            };
            messages.push(Msg {
                role,
                content: &m.content,
            });
        }
        let body = Body {
            model: &req.model,
            messages,
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
            if let Some(r) = c["finish_reason"].as_str() {
                st.stop_reason = Some(r.to_string());
            }
        }
        if let (Some(i), Some(o)) = (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64(),
        ) {
            st.usage = Some((i, o));
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
            Ok(Completion {
                text: choice.message.content.unwrap_or_default(),
                model: answer.model.unwrap_or_else(|| req.model.clone()),
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                stop_reason: choice.finish_reason,
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
