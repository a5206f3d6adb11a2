//! `nofx usage`: usage and cost analytics of a range, grouped by day, model, tool or project
//! (the same document as `GET /analytics/usage`).

use super::{open_existing_store, CliResult, Failure, Global};
use clap::{Args, ValueEnum};

#[derive(Args)]
pub struct UsageArgs {
    /// Start of the range (inclusive): YYYY-MM-DD (UTC midnight) or RFC 3339; default 7 days ago.
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// End of the range (exclusive): YYYY-MM-DD or RFC 3339; default now.
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Bucket width.
    #[arg(long, value_enum, default_value = "day")]
    group_by: GroupByArg,
    /// Only this project's calls.
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GroupByArg {
    Hour,
    Day,
    Week,
}

/// Reads `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time as milliseconds since the epoch.
pub fn parse_date(flag: &str, s: &str) -> Result<i64, Failure> {
    crate::store::parse_date(s).ok_or_else(|| {
        Failure::Input(format!(
            "{flag} `{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })
}

pub async fn usage(g: &Global, a: UsageArgs) -> CliResult {
    let now = crate::domain::time::now_ms();
    let until = match &a.until {
        Some(s) => parse_date("--until", s)?,
        None => now,
    };
    let since = match &a.since {
        Some(s) => parse_date("--since", s)?,
        None => until - 7 * 86_400_000,
    };
    let group = match a.group_by {
        GroupByArg::Hour => crate::store::GroupBy::Hour,
        GroupByArg::Day => crate::store::GroupBy::Day,
        GroupByArg::Week => crate::store::GroupBy::Week,
    };
    if until <= since {
        return Err(Failure::Input(format!(
            "--until ({}) must be after --since ({})",
            crate::domain::time::rfc3339(until),
            crate::domain::time::rfc3339(since)
        )));
    }
    let store = open_existing_store(g).await?;
    let report = store.usage(since, until, group, a.project.as_deref()).await;
    store.close().await;
    let report = report.map_err(|e| match e {
        crate::store::StoreError::BadRange(m) => Failure::Input(m),
        other => Failure::from(other),
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12} {:>10} {:>7}",
        "BUCKET", "RUNS", "TASKS", "CALLS", "TOKENS", "COST (USD)", "AVG MS", "ERRORS"
    );
    for b in &report.usage {
        println!(
            "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12.6} {:>10.1} {:>7}",
            b.bucket, b.runs, b.tasks, b.calls, b.tokens, b.cost, b.avg_duration, b.errors
        );
    }
    let s = &report.summary;
    println!(
        "{:<22} {:>6} {:>7} {:>7} {:>10} {:>12.6} {:>10.1} {:>7}",
        "total",
        s.total_runs,
        s.total_tasks,
        s.total_calls,
        s.total_tokens,
        s.total_cost,
        s.average_duration,
        s.total_errors
    );
    Ok(())
}
