//! Model call failures, classified so that retries, fallbacks and usage rows can tell them apart.

use std::fmt;
use std::time::Duration;

/// What kind of failure a model call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 429: too many requests.
    RateLimited,
    /// 529 (or the provider says so): overloaded.
    Overloaded,
    /// 500, 502, 503, 504: the provider failed.
    Server,
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// 401/403: the key is missing, wrong or not allowed.
    Auth,
    /// The request was refused as invalid.
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextTooLong,
    /// The answer could not be read.
    MalformedResponse,
    /// A streamed answer broke off midway.
    Interrupted,
    /// The caller stopped waiting (its task was cancelled or stopped) before an answer came.
    Cancelled,
}

impl ErrorKind {
    /// The `error_type` recorded in usage rows and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::BadRequest => "bad_request",
            Self::ContextTooLong => "context_too_long",
            Self::MalformedResponse => "malformed_response",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the same request may succeed if tried again.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Overloaded | Self::Server | Self::Interrupted
        )
    }

    /// The kind an HTTP status means.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            413 => Self::ContextTooLong,
            429 => Self::RateLimited,
            529 => Self::Overloaded,
            500 | 502 | 503 | 504 => Self::Server,
            s if s >= 500 => Self::Server,
            _ => Self::BadRequest,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ModelError {
    /// The classification.
    pub kind: ErrorKind,
    /// What the provider (or the client) said; never holds a key.
    pub message: String,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// How long the provider asked to wait before trying again.
    pub retry_after: Option<Duration>,
    /// Tokens (input, output) billed before a streamed answer broke off.
    pub partial_usage: Option<(u64, u64)>,
}

impl ModelError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            partial_usage: None,
        }
    }

    /// Classifies a reqwest failure (timeouts, connection errors).
    pub(crate) fn from_transport(provider: &str, e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        };
        // reqwest's message can include the URL but never headers, so no key leaks here.
        Self::new(kind, format!("{provider}: {e}"))
    }

    /// Classifies a failure to read an answer that had begun: no more of it in time is a
    /// timeout; a body broken off midway is `interrupted` (as a cut stream is), which may
    /// succeed if tried again.
    pub(crate) fn from_body(provider: &str, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::from_transport(provider, e);
        }
        Self::new(
            ErrorKind::Interrupted,
            format!("{provider}: the answer broke off: {e}"),
        )
    }
}
