//! Retries of one model call: transient failures (429, 529, 500/502/503/504) are tried again,
//! after `Retry-After` when the provider gives one, else after an exponential backoff with
//! jitter; other failures return at once, for the caller to fall back to another model.

use super::{Completion, CompletionRequest, ModelError, Provider};
use std::time::Duration;

/// How a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time.
    pub base_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1` after `err`, or `None` when `err` is
    /// not transient, attempts are used up, or the provider's `Retry-After` asks for longer
    /// than `max_backoff` (the call is then not sent again early: it moves on, to the next
    /// model of its route).
    pub fn wait_after(&self, err: &ModelError, attempt: u32) -> Option<Duration> {
        if !err.kind.is_transient() || attempt >= self.max_attempts.max(1) {
            return None;
        }
        match err.retry_after {
            Some(asked) if asked > self.max_backoff => None,
            Some(asked) => Some(asked),
            None => Some(self.backoff(attempt)),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exp.min(self.max_backoff);
        // Full jitter over the upper half keeps clients from retrying in step.
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The outcome of a call and every failure met on the way.
#[derive(Debug)]
pub struct Tried<T = Completion> {
    /// The final result.
    pub result: Result<T, ModelError>,
    /// Failed attempts before it, in order.
    pub failures: Vec<ModelError>,
}

/// Makes attempts of a call to `model` until one succeeds, a failure is not transient, or
/// attempts run out, waiting between them as `policy` says. Every model call goes through
/// here (the gateway's attempts also reserve budget and record usage; a refusal of the budget
/// is a value of `T`, never retried).
///
/// # Cancel safety
/// Dropping the future abandons the attempt in flight.
pub async fn retrying<T, F, Fut>(policy: RetryPolicy, model: &str, mut attempt: F) -> Tried<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ModelError>>,
{
    let mut failures = Vec::new();
    let mut n = 1;
    loop {
        match attempt().await {
            Ok(v) => {
                return Tried {
                    result: Ok(v),
                    failures,
                }
            }
            Err(e) => match policy.wait_after(&e, n) {
                Some(wait) => {
                    tracing::warn!(model, attempt = n, error_type = %e.kind, error = %e.message, wait_ms = wait.as_millis() as u64, "model call failed; retrying");
                    failures.push(e);
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                None => {
                    match e.retry_after.filter(|asked| *asked > policy.max_backoff) {
                        Some(asked) if e.kind.is_transient() => {
                            tracing::warn!(model, attempt = n, error_type = %e.kind, error = %e.message, retry_after_ms = asked.as_millis() as u64, max_backoff_ms = policy.max_backoff.as_millis() as u64, "model call failed; the provider asks to wait longer than this call waits, so it is not sent again");
                        }
                        _ => {
                            tracing::warn!(model, attempt = n, error_type = %e.kind, error = %e.message, "model call failed");
                        }
                    }
                    return Tried {
                        result: Err(e),
                        failures,
                    };
                }
            },
        }
    }
}

/// Calls `provider` until it succeeds, a failure is not transient, or attempts run out.
///
/// # Cancel safety
/// Dropping the future abandons the call in flight.
pub async fn complete_with_retry(
    provider: &dyn Provider,
    req: &CompletionRequest,
    policy: RetryPolicy,
) -> Tried {
    retrying(policy, &req.model, || provider.complete(req)).await
}
