//! Model-call rows, and usage over a half-open time range in buckets (hour, day, ISO week)
//! with totals. Usage counts all work, whatever its handler: every step recorded in the range
//! (each task attempt's metrics row and each model call) gives the runs, the average duration
//! and the errors; tasks are the attempts, calls, tokens and cost the model calls. Every
//! bucket of the range is listed, empty ones with zeros. The JSON shape is the one
//! `nofx usage --json` prints and the HTTP analytics endpoint serves.

use super::{q, with_pool, Store, StoreError};
use crate::domain::time::rfc3339_secs as rfc3339;
use serde::Serialize;
use sqlx::Row;

/// One model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCallRow {
    /// The run (none for planner calls made before the run exists).
    pub run_id: Option<String>,
    /// The task.
    pub task_id: Option<String>,
    /// The tool that called.
    pub tool: Option<String>,
    /// The agent that called.
    pub agent: Option<String>,
    /// Model id.
    pub model: String,
    /// Provider name.
    pub provider: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: i64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: i64,
    /// Cost estimated before the call, micro-USD.
    pub estimated_cost_micro_usd: i64,
    /// Actual cost, micro-USD.
    pub cost_micro_usd: i64,
    /// Wall time.
    pub duration_ms: i64,
    /// Whether it succeeded.
    pub success: bool,
    /// Failure class.
    pub error_type: Option<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// When it ended (ms).
    pub at: i64,
    /// The project billed.
    pub project: Option<String>,
}

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
    /// One ISO week (from Monday 00:00 UTC).
    Week,
}

impl GroupBy {
    fn width_ms(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Week => 7 * 86_400_000,
        }
    }

    /// Buckets start at multiples of the width from this instant (1970-01-05 was a Monday).
    fn origin_ms(self) -> i64 {
        match self {
            Self::Week => 4 * 86_400_000,
            _ => 0,
        }
    }

    /// The start of the bucket holding `at`.
    pub fn floor(self, at: i64) -> i64 {
        let (w, o) = (self.width_ms(), self.origin_ms());
        (at - o).div_euclid(w) * w + o
    }
}

/// One bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    /// RFC 3339 UTC start.
    pub bucket: String,
    /// Distinct runs with work in it (task attempts or model calls).
    pub runs: i64,
    /// Task attempts.
    pub tasks: i64,
    /// Model calls.
    pub calls: i64,
    /// Input + output tokens.
    pub tokens: i64,
    /// USD.
    pub cost: f64,
    /// Average duration of its steps (task attempts and model calls), ms (0 when none).
    pub avg_duration: f64,
    /// Failed steps (task attempts and model calls).
    pub errors: i64,
}

/// Totals over the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// Distinct runs with work in the range.
    pub total_runs: i64,
    /// Task attempts.
    pub total_tasks: i64,
    /// Model calls.
    pub total_calls: i64,
    /// Tokens.
    pub total_tokens: i64,
    /// USD.
    pub total_cost: f64,
    /// Average step duration, ms (0 when no steps).
    pub average_duration: f64,
    /// Failed steps.
    pub total_errors: i64,
}

/// The usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// Every bucket of the range, in order.
    pub usage: Vec<UsageBucket>,
    /// Totals.
    pub summary: UsageSummary,
}

/// Reads `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time as milliseconds since the epoch.
///
/// ```
/// assert_eq!(nofx::store::parse_date("1970-01-02"), Some(86_400_000));
/// assert_eq!(nofx::store::parse_date("1970-01-01T00:00:01Z"), Some(1_000));
/// assert_eq!(nofx::store::parse_date("yesterday"), None);
/// ```
pub fn parse_date(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// Most buckets one report lists.
pub const MAX_BUCKETS: i64 = 100_000;

fn avg(total: i64, n: i64) -> f64 {
    if n == 0 {
        0.0
    } else {
        total as f64 / n as f64
    }
}

impl Store {
    /// Usage over `[since, until)` (ms), grouped by `group`, of every project or of one.
    ///
    /// # Errors
    /// An empty or reversed range, too many buckets, query failures.
    pub async fn usage(
        &self,
        since: i64,
        until: i64,
        group: GroupBy,
        project: Option<&str>,
    ) -> Result<UsageReport, StoreError> {
        let project = project.unwrap_or("");
        if until <= since {
            return Err(StoreError::BadRange(format!(
                "`until` ({}) must be after `since` ({})",
                rfc3339(until),
                rfc3339(since)
            )));
        }
        let (w, o) = (group.width_ms(), group.origin_ms());
        let first = group.floor(since);
        let n = (until - 1 - first) / w + 1;
        if n > MAX_BUCKETS {
            return Err(StoreError::BadRange(format!(
                "the range holds {n} buckets; at most {MAX_BUCKETS} fit in one report"
            )));
        }
        // Every step of the range: model calls (billed to the project) and task attempts
        // (of the project's runs). Integer bucket index per row; CAST keeps SUM an integer on
        // Postgres too.
        let steps = "SELECT at, run_id, 1 AS is_call, input_tokens + output_tokens AS tokens, \
                     cost_micro_usd AS cost, duration_ms, success FROM model_calls \
                     WHERE at >= $1 AND at < $2 AND ($3 = '' OR project = $3) \
                     UNION ALL SELECT m.at, m.run_id, 0, 0, 0, m.duration_ms, m.success \
                     FROM metrics m JOIN runs r ON r.id = m.run_id \
                     WHERE m.at >= $1 AND m.at < $2 AND ($3 = '' OR r.project = $3)";
        let sums = "COUNT(DISTINCT run_id) AS runs, \
                    CAST(COALESCE(SUM(is_call), 0) AS BIGINT) AS calls, \
                    CAST(COALESCE(SUM(1 - is_call), 0) AS BIGINT) AS tasks, \
                    CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
                    CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost, \
                    CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS dur, \
                    CAST(COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0) AS BIGINT) AS errors";
        let sql = format!("SELECT (at - $4) / $5 AS b, {sums} FROM ({steps}) steps GROUP BY 1");
        let totals = format!("SELECT {sums} FROM ({steps}) steps");
        let mut usage: Vec<UsageBucket> = (0..n)
            .map(|i| UsageBucket {
                bucket: rfc3339(first + i * w),
                runs: 0,
                tasks: 0,
                calls: 0,
                tokens: 0,
                cost: 0.0,
                avg_duration: 0.0,
                errors: 0,
            })
            .collect();
        let summary = with_pool!(self, |p, _b| {
            let rows = sqlx::query(&sql)
                .bind(since)
                .bind(until)
                .bind(project)
                .bind(o)
                .bind(w)
                .fetch_all(p)
                .await
                .map_err(q("usage buckets"))?;
            for r in rows {
                let b: i64 = r.try_get("b").map_err(q("usage buckets"))?;
                let idx = b * w + o - first;
                let Some(slot) = usize::try_from(idx / w).ok().and_then(|i| usage.get_mut(i))
                else {
                    continue;
                };
                let calls: i64 = r.try_get("calls").map_err(q("usage buckets"))?;
                let tasks: i64 = r.try_get("tasks").map_err(q("usage buckets"))?;
                let dur: i64 = r.try_get("dur").map_err(q("usage buckets"))?;
                slot.runs = r.try_get("runs").map_err(q("usage buckets"))?;
                slot.tasks = tasks;
                slot.calls = calls;
                slot.tokens = r.try_get("tokens").map_err(q("usage buckets"))?;
                slot.cost = r.try_get::<i64, _>("cost").map_err(q("usage buckets"))? as f64 / 1e6;
                slot.avg_duration = avg(dur, calls + tasks);
                slot.errors = r.try_get("errors").map_err(q("usage buckets"))?;
            }
            let t = sqlx::query(&totals)
                .bind(since)
                .bind(until)
                .bind(project)
                .fetch_one(p)
                .await
                .map_err(q("usage totals"))?;
            let calls: i64 = t.try_get("calls").map_err(q("usage totals"))?;
            let tasks: i64 = t.try_get("tasks").map_err(q("usage totals"))?;
            let dur: i64 = t.try_get("dur").map_err(q("usage totals"))?;
            UsageSummary {
                total_runs: t.try_get("runs").map_err(q("usage totals"))?,
                total_tasks: tasks,
                total_calls: calls,
                total_tokens: t.try_get("tokens").map_err(q("usage totals"))?,
                total_cost: t.try_get::<i64, _>("cost").map_err(q("usage totals"))? as f64 / 1e6,
                average_duration: avg(dur, calls + tasks),
                total_errors: t.try_get("errors").map_err(q("usage totals"))?,
            }
        });
        Ok(UsageReport { usage, summary })
    }

    /// Micro-USD spent by the model calls of `run`.
    ///
    /// # Errors
    /// Query failures.
    pub async fn run_spend(&self, run: crate::domain::RunId) -> Result<i64, StoreError> {
        self.spend("run_id = $1", &run.to_string(), 0, 0).await
    }

    /// Micro-USD spent by the model calls billed to `project` in `[since, until)` (ms).
    ///
    /// # Errors
    /// Query failures.
    pub async fn project_spend(
        &self,
        project: &str,
        since: i64,
        until: i64,
    ) -> Result<i64, StoreError> {
        self.spend(
            "project = $1 AND at >= $2 AND at < $3",
            project,
            since,
            until,
        )
        .await
    }

    async fn spend(
        &self,
        filter: &str,
        key: &str,
        since: i64,
        until: i64,
    ) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost FROM model_calls WHERE {filter}"
        );
        let bounded = filter.contains("$2");
        let cost = with_pool!(self, |p, _b| {
            let mut query = sqlx::query(&sql).bind(key);
            if bounded {
                query = query.bind(since).bind(until);
            }
            query
                .fetch_one(p)
                .await
                .and_then(|r| r.try_get::<i64, _>("cost"))
                .map_err(q("model spend"))?
        });
        Ok(cost)
    }

    /// The model calls of `run`, in the order they were recorded.
    ///
    /// # Errors
    /// Query failures.
    pub async fn model_calls(
        &self,
        run: crate::domain::RunId,
    ) -> Result<Vec<ModelCallRow>, StoreError> {
        let sql =
            "SELECT run_id, task_id, tool, agent, model, provider, input_tokens, output_tokens, \
                   cache_read_tokens, cache_write_tokens, estimated_cost_micro_usd, cost_micro_usd, duration_ms, success, error_type, \
                   correlation_id, at, project FROM model_calls WHERE run_id = $1 ORDER BY id";
        let rows = with_pool!(self, |p, _b| {
            let rows = sqlx::query(sql)
                .bind(run.to_string())
                .fetch_all(p)
                .await
                .map_err(q("model calls"))?;
            rows.iter()
                .map(|r| {
                    Ok(ModelCallRow {
                        run_id: r.try_get("run_id")?,
                        task_id: r.try_get("task_id")?,
                        tool: r.try_get("tool")?,
                        agent: r.try_get("agent")?,
                        model: r.try_get("model")?,
                        provider: r.try_get("provider")?,
                        input_tokens: r.try_get("input_tokens")?,
                        output_tokens: r.try_get("output_tokens")?,
                        cache_read_tokens: r.try_get("cache_read_tokens")?,
                        cache_write_tokens: r.try_get("cache_write_tokens")?,
                        estimated_cost_micro_usd: r.try_get("estimated_cost_micro_usd")?,
                        cost_micro_usd: r.try_get("cost_micro_usd")?,
                        duration_ms: r.try_get("duration_ms")?,
                        success: r.try_get("success")?,
                        error_type: r.try_get("error_type")?,
                        correlation_id: r.try_get("correlation_id")?,
                        at: r.try_get("at")?,
                        project: r.try_get("project")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(q("model calls"))?
        });
        Ok(rows)
    }
}
