//! Times: the clock (`now_ms`), and the one place times are written as text. Times are
//! stored as milliseconds since the Unix epoch and shown in documents (CLI `--json`, the API,
//! events) as RFC 3339 in UTC with milliseconds, e.g. `2026-12-03T13:20:39.028Z`; where people
//! read them (tables, messages) and for usage buckets, to the second.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Milliseconds since the Unix epoch to a UTC time (clamped to the epoch when out of range).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// RFC 3339 text of a time, UTC with milliseconds.
pub fn text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 text of a time in ms since the epoch, UTC to the second (`2026-12-03T13:20:39Z`).
pub fn rfc3339_secs(ms: i64) -> String {
    from_ms(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, in ms since the Unix epoch (the form every stored time has).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text of a time in ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    text(&from_ms(ms))
}

/// `#[serde(serialize_with = "…::ms")]` for an `i64` of ms since the epoch.
pub fn ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// `#[serde(serialize_with = "…::opt_ms")]` for an `Option<i64>` (`null` when absent).
pub fn opt_ms<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(v) => s.serialize_str(&rfc3339(*v)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
