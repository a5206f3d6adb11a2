//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with a bearer key (which
//! local servers may ignore); the system prompt is the first message; usage comes back as
//! `prompt_tokens`/`completion_tokens`; errors are `{"error":{"message","type","code"}}`.

use super::{
    exchange, http_client, malformed, ApiKey, Completion, CompletionRequest, ErrorKind, ModelError,
    Provider, Timeouts,
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

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        req: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(async move {
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
            };
            let mut call = self
                .http
                .post(format!("{}/chat/completions", self.base_url))
                .json(&body);
            if let Some(k) = &self.key {
                call = call.bearer_auth(k.expose());
            }
            let (status, bytes) = exchange(&self.name, call, |status, body| {
                let detail = serde_json::from_slice::<ErrorBody>(body)
                    .ok()
                    .map(|b| b.error);
                let message = match &detail {
                    Some(d) => d.message.clone(),
                    None => format!("HTTP {status}"),
                };
                (classify(status, detail.as_ref()), message)
            })
            .await?;
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
}
