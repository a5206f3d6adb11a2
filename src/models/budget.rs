//! Budgets (`policies/budgets.toml`) and the ledger that enforces them. Each model call
//! reserves its worst-case cost (estimated input plus `max_tokens` of output) before it is
//! made and settles to its actual cost after, so calls in parallel cannot overshoot together.
//! Spend already committed is read from the store the first time a run or a project-month is
//! seen; afterwards this process adds what it settles.
//!
//! ```toml
//! per_call_alert_usd = 0.50     # a call above this emits `cost.alert`
//! per_run_usd = 5.00            # a run stops before the call that would pass this
//! [per_project_monthly_usd]     # per project and calendar month (UTC)
//! default = 100.0               # projects not listed
//! research = 250.0
//! ```

use crate::config::{line_at, parse_toml, ConfigIssue};
use crate::domain::RunId;
use crate::store::{Store, StoreError};
use chrono::{Datelike, TimeZone, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use toml::Spanned;

/// Spending limits, in micro-USD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budgets {
    /// A call costing more than this emits `cost.alert`.
    pub per_call_alert: Option<i64>,
    /// What one run may spend.
    pub per_run: Option<i64>,
    /// What a project may spend per calendar month (UTC); `default` covers the rest.
    pub per_project_monthly: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    per_call_alert_usd: Option<Spanned<f64>>,
    per_run_usd: Option<Spanned<f64>>,
    #[serde(default)]
    per_project_monthly_usd: BTreeMap<String, Spanned<f64>>,
}

/// USD to micro-USD.
pub(crate) fn micro(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

/// Micro-USD as dollars: `$5.00`, `$0.00165`, `$0.000001` (at least cents, no trailing zeros
/// beyond them).
pub fn usd(micro: i64) -> String {
    let full = format!("{:.6}", micro as f64 / 1e6);
    let trimmed = full.trim_end_matches('0');
    let dot = trimmed.find('.').unwrap_or(trimmed.len());
    let keep = trimmed.len().max(dot + 3).min(full.len());
    format!("${}", &full[..keep])
}

impl Budgets {
    /// Parses `budgets.toml`.
    ///
    /// # Errors
    /// Every bad entry, each naming file, line and key.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, Vec<ConfigIssue>> {
        let raw: RawFile = parse_toml(text, file)?;
        let mut errors = Vec::new();
        let mut check = |key: String, v: &Spanned<f64>| {
            let x = *v.get_ref();
            if x.is_finite() && x >= 0.0 {
                Some(micro(x))
            } else {
                errors.push(ConfigIssue {
                    file: file.into(),
                    line: Some(line_at(text, v.span().start)),
                    message: format!("`{key}` must be an amount of USD of 0 or more, got {x}"),
                });
                None
            }
        };
        let per_call_alert = raw
            .per_call_alert_usd
            .as_ref()
            .and_then(|v| check("per_call_alert_usd".into(), v));
        let per_run = raw
            .per_run_usd
            .as_ref()
            .and_then(|v| check("per_run_usd".into(), v));
        let mut per_project_monthly = BTreeMap::new();
        for (name, v) in &raw.per_project_monthly_usd {
            if let Some(m) = check(format!("per_project_monthly_usd.{name}"), v) {
                per_project_monthly.insert(name.clone(), m);
            }
        }
        if errors.is_empty() {
            Ok(Self {
                per_call_alert,
                per_run,
                per_project_monthly,
            })
        } else {
            Err(errors)
        }
    }

    fn project_limit(&self, project: &str) -> Option<i64> {
        self.per_project_monthly
            .get(project)
            .or_else(|| self.per_project_monthly.get("default"))
            .copied()
    }
}

/// A call that would pass a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scope} budget of {} would be exceeded: {} spent, {} reserved by calls in flight, this call may cost up to {}", usd(*.limit), usd(*.spent), usd(*.reserved), usd(*.call))]
pub struct BudgetExceeded {
    /// `run` or `project "NAME" (2026-11)`.
    pub scope: String,
    /// The limit.
    pub limit: i64,
    /// Settled spend.
    pub spent: i64,
    /// Reserved by calls in flight.
    pub reserved: i64,
    /// This call's worst case.
    pub call: i64,
}

/// A budget check failed.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The call would pass a budget.
    #[error(transparent)]
    Exceeded(#[from] BudgetExceeded),
    /// Spend could not be read.
    #[error("cannot read spend so far: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, Copy)]
struct Account {
    spent: i64,
    reserved: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Run(RunId),
    Project(String, i64),
}

#[derive(Default)]
struct Accounts(Mutex<HashMap<Key, Account>>);

impl Accounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Account>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reserves and settles model spend against [`Budgets`].
#[derive(Clone)]
pub struct Ledger {
    budgets: Arc<Budgets>,
    store: Option<Store>,
    accounts: Arc<Accounts>,
}

/// Start and end (ms) of the calendar month (UTC) holding `at_ms`.
pub(crate) fn month_of(at_ms: i64) -> (i64, i64) {
    let at = crate::domain::event::from_ms(at_ms);
    let start = Utc
        .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    (start.timestamp_millis(), end.timestamp_millis())
}

/// A reservation: released when dropped unless settled.
pub struct Reservation {
    accounts: Arc<Accounts>,
    keys: Vec<Key>,
    amount: i64,
}

impl Reservation {
    /// Turns the reservation into `actual` spend.
    pub fn settle(mut self, actual: i64) {
        let mut a = self.accounts.lock();
        for k in &self.keys {
            let e = a.entry(k.clone()).or_default();
            e.reserved -= self.amount;
            e.spent += actual;
        }
        drop(a);
        self.keys.clear();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut a = self.accounts.lock();
        for k in &self.keys {
            if let Some(e) = a.get_mut(k) {
                e.reserved -= self.amount;
            }
        }
    }
}

impl Ledger {
    /// A ledger for `budgets`, reading spend so far from `store` (none: from zero).
    pub fn new(budgets: Budgets, store: Option<Store>) -> Self {
        Self {
            budgets: Arc::new(budgets),
            store,
            accounts: Arc::default(),
        }
    }

    /// The budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    async fn load(&self, key: &Key) -> Result<(), StoreError> {
        if self.accounts.lock().contains_key(key) {
            return Ok(());
        }
        let spent = match (&self.store, key) {
            (None, _) => 0,
            (Some(s), Key::Run(r)) => s.run_spend(*r).await?,
            (Some(s), Key::Project(p, start)) => {
                let (from, to) = month_of(*start);
                s.project_spend(p, from, to).await?
            }
        };
        self.accounts
            .lock()
            .entry(key.clone())
            .or_insert(Account { spent, reserved: 0 });
        Ok(())
    }

    /// Reserves `amount` for a call of `run` billed to `project` at `now_ms`.
    ///
    /// # Errors
    /// When the run's or the project's budget would be passed; when spend cannot be read.
    pub async fn reserve(
        &self,
        run: Option<RunId>,
        project: &str,
        amount: i64,
        now_ms: i64,
    ) -> Result<Reservation, BudgetError> {
        let mut limited: Vec<(Key, i64, String)> = Vec::new();
        if let (Some(r), Some(limit)) = (run, self.budgets.per_run) {
            limited.push((Key::Run(r), limit, "run".into()));
        }
        if let Some(limit) = self.budgets.project_limit(project) {
            let (start, _) = month_of(now_ms);
            let month = crate::domain::event::from_ms(start).format("%Y-%m");
            limited.push((
                Key::Project(project.to_string(), start),
                limit,
                format!("project \"{project}\" ({month})"),
            ));
        }
        for (k, _, _) in &limited {
            self.load(k).await?;
        }
        let mut a = self.accounts.lock();
        for (k, limit, scope) in &limited {
            let e = a.get(k).copied().unwrap_or_default();
            if e.spent + e.reserved + amount > *limit {
                return Err(BudgetExceeded {
                    scope: scope.clone(),
                    limit: *limit,
                    spent: e.spent,
                    reserved: e.reserved,
                    call: amount,
                }
                .into());
            }
        }
        let keys: Vec<Key> = limited.into_iter().map(|(k, _, _)| k).collect();
        for k in &keys {
            a.entry(k.clone()).or_default().reserved += amount;
        }
        drop(a);
        Ok(Reservation {
            accounts: self.accounts.clone(),
            keys,
            amount,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_bad_amounts_name_their_line() {
        let b = Budgets::from_toml(
            "per_call_alert_usd = 0.5\nper_run_usd = 2\n[per_project_monthly_usd]\ndefault = 100.0\n",
            "budgets.toml",
        )
        .unwrap();
        assert_eq!(b.per_run, Some(2_000_000));
        assert_eq!(b.project_limit("x"), Some(100_000_000));
        let e = Budgets::from_toml("per_run_usd = -1.0\n", "budgets.toml").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "budgets.toml:1: `per_run_usd` must be an amount of USD of 0 or more, got -1"
        );
    }

    #[test]
    fn amounts_print_as_dollars() {
        assert_eq!(usd(5_000_000), "$5.00");
        assert_eq!(usd(1_650), "$0.00165");
        assert_eq!(usd(1), "$0.000001");
        assert_eq!(usd(1_234_500), "$1.2345");
    }

    #[test]
    fn months_are_calendar_months_in_utc() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 0)
            .unwrap()
            .timestamp_millis();
        let (s, e) = month_of(at);
        assert_eq!(
            crate::domain::event::from_ms(s).to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            crate::domain::event::from_ms(e).to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
    }

    #[tokio::test]
    async fn parallel_reservations_cannot_overshoot_together() {
        let ledger = Ledger::new(
            Budgets {
                per_run: Some(1_000),
                ..Budgets::default()
            },
            None,
        );
        let run = Some(RunId::new());
        let a = ledger.reserve(run, "p", 600, 0).await.unwrap();
        let err = ledger.reserve(run, "p", 600, 0).await.err().unwrap();
        assert!(
            err.to_string()
                .starts_with("run budget of $0.001 would be exceeded"),
            "{err}"
        );
        a.settle(100);
        // 100 spent: another 600 fits now; a dropped reservation gives its amount back.
        let b = ledger.reserve(run, "p", 600, 0).await.unwrap();
        drop(b);
        let c = ledger.reserve(run, "p", 900, 0).await.unwrap();
        c.settle(900);
        assert!(ledger.reserve(run, "p", 1, 0).await.is_err());
    }
}
