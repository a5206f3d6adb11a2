//! Retries of one model call: transient failures (429, 529, 500/502/503/504) are tried again,
//! after `Retry-After` when the provider gives one, else after an exponential backoff with
//! jitter; other failures return at once, for the caller to fall back to another model.

use super::{Completion, CompletionRequest, ErrorKind, ModelError, Provider};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// When each model may be called again, as the provider's last `Retry-After` for it asked:
/// shared by every call of a process, so that another task (or a task's own retry, or the
/// next run) does not send to a model sooner than its provider asked.
#[derive(Debug, Default)]
pub struct Cooldowns {
    until: Mutex<HashMap<String, Instant>>,
}

impl Cooldowns {
    /// Notes what `err` asked of `model` (nothing when it gave no `Retry-After`).
    pub fn note(&self, model: &str, err: &ModelError) {
        let Some(wait) = err.retry_after else { return };
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, t| *t > now);
        let t = map.entry(model.to_string()).or_insert(until);
        *t = (*t).max(until);
    }

    /// How long `model` must still wait, if at all.
    pub fn left(&self, model: &str) -> Option<Duration> {
        let map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let left = map.get(model)?.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// Waits out `model`'s cooldown when it is within `policy`'s longest wait; when it is
    /// longer, the call is not sent: a `rate_limited` error (carrying what is left) moves it on
    /// to the next model of its route.
    ///
    /// # Cancel safety
    /// Dropping the future stops the wait.
    pub async fn wait(&self, model: &str, policy: RetryPolicy) -> Result<(), ModelError> {
        let Some(left) = self.left(model) else {
            return Ok(());
        };
        if left > policy.max_backoff {
            let mut e = ModelError::new(
                ErrorKind::RateLimited,
                format!(
                    "not sent: the provider asked to wait {} ms more before calling {model} again",
                    left.as_millis()
                ),
            );
            e.retry_after = Some(left);
            return Err(e);
        }
        tracing::info!(
            model,
            wait_ms = left.as_millis() as u64,
            "waiting out the provider's Retry-After before calling the model"
        );
        tokio::time::sleep(left).await;
        Ok(())
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
