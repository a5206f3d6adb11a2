//! Times in documents: stored as milliseconds since the Unix epoch, shown everywhere (CLI
//! `--json`, the API, events) as RFC 3339 in UTC with milliseconds, e.g.
//! `2026-12-03T13:20:39.028Z`.

use chrono::SecondsFormat;
use serde::Serializer;

/// Now, in ms since the Unix epoch (the form every stored time has).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text of a time in ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    super::event::from_ms(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
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
