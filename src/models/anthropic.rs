//! Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`; the system prompt is a top-level field; usage comes back as
//! `input_tokens`/`output_tokens`; errors are `{"type":"error","error":{"type","message"}}`.

use super::{
    exchange, http_client, malformed, read_stream, send, ApiKey, Completion, CompletionRequest,
    ErrorKind, ModelError, Provider, Streamed, Timeouts,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

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
    system: Option<&'a str>,
    messages: &'a [super::Message],
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
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
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
            system: req.system.as_deref(),
            messages: &req.messages,
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
                st.usage = Some((
                    m["usage"]["input_tokens"].as_u64().unwrap_or(0),
                    m["usage"]["output_tokens"].as_u64().unwrap_or(0),
                ));
            }
            "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                let t = v["delta"]["text"].as_str().unwrap_or_default();
                st.text.push_str(t);
                on_text(t);
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
            Ok(Completion {
                text,
                model: answer.model.unwrap_or_else(|| req.model.clone()),
                input_tokens: answer.usage.input_tokens,
                output_tokens: answer.usage.output_tokens,
                stop_reason: answer.stop_reason,
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
