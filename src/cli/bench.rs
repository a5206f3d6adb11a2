//! `nofx bench`: flags of the benchmark (`crate::bench` runs it) and its report.

use super::{CliResult, Failure, Global};
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Plan shape.
    #[arg(long, value_enum, default_value = "fanout")]
    shape: BenchShape,
    /// Number of tasks; several sizes (`10000,100000`) run one after another in this
    /// process, one JSON line each.
    #[arg(long, default_value = "1000", value_delimiter = ',', num_args = 1..)]
    tasks: Vec<usize>,
    /// With several sizes: exit 1 when the largest run takes more than this many times as
    /// long as the smallest (a cost per task that grows with the run shows as a ratio above
    /// the ratio of the sizes, whatever the machine's speed).
    #[arg(long, value_name = "RATIO")]
    max_ratio: Option<f64>,
    /// Store.
    #[arg(long, value_enum, default_value = "memory")]
    store: BenchStoreArg,
    /// Instead: one agent loop of this many turns against a model that answers at once;
    /// reports the loop's overhead per turn (one model request to the next).
    #[arg(long, value_name = "TURNS", conflicts_with_all = ["max_ratio"])]
    agent_turns: Option<usize>,
}

/// Plan shape (the CLI's names for [`crate::bench::Shape`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchShape {
    /// N tasks in sequence.
    Chain,
    /// One root, N parallel tasks, one sink.
    Fanout,
    /// N/100 layers of 100 tasks, each depending on the whole previous layer.
    Layered,
    /// One root whose output lists N-3 items, a task that decomposes with one subtask per
    /// item (`for_each`), one sink: N tasks in all.
    Foreach,
    /// No plan: N one-row transactions in a loop through the store's group commit, each
    /// checking the run's lease as a runtime's commits do (the store's own commit latency;
    /// tasks_per_s is commits per second).
    Commit,
}

impl From<BenchShape> for crate::bench::Shape {
    fn from(s: BenchShape) -> Self {
        match s {
            BenchShape::Chain => Self::Chain,
            BenchShape::Fanout => Self::Fanout,
            BenchShape::Layered => Self::Layered,
            BenchShape::Foreach => Self::Foreach,
            BenchShape::Commit => Self::Commit,
        }
    }
}

/// Which store (the CLI's names for [`crate::bench::BenchStore`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchStoreArg {
    /// In-memory SQLite.
    Memory,
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on a Postgres server.
    Postgres,
}

impl From<BenchStoreArg> for crate::bench::BenchStore {
    fn from(s: BenchStoreArg) -> Self {
        match s {
            BenchStoreArg::Memory => Self::Memory,
            BenchStoreArg::Sqlite => Self::Sqlite,
            BenchStoreArg::Postgres => Self::Postgres,
        }
    }
}

pub async fn bench(g: &Global, a: BenchArgs) -> CliResult {
    let fail = |e| match e {
        crate::bench::BenchError::Input(m) => Failure::Input(m),
        other => Failure::Error(other.to_string()),
    };
    if let Some(turns) = a.agent_turns {
        let report = crate::bench::agent_loop(turns, a.store.into(), g.database_url.as_deref())
            .await
            .map_err(fail)?;
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
        return Ok(());
    }
    let mut reports = Vec::new();
    for &n in &a.tasks {
        let report =
            crate::bench::run(a.shape.into(), n, a.store.into(), g.database_url.as_deref())
                .await
                .map_err(fail)?;
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::Error(e.to_string()))?
        );
        reports.push(report);
    }
    let Some(max) = a.max_ratio else {
        return Ok(());
    };
    let small = reports.iter().min_by_key(|r| r.tasks);
    let large = reports.iter().max_by_key(|r| r.tasks);
    let (Some(small), Some(large)) = (small, large) else {
        return Ok(());
    };
    if small.tasks == large.tasks {
        return Err(Failure::Input(
            "--max-ratio needs two different --tasks sizes".into(),
        ));
    }
    let ratio = large.seconds / small.seconds.max(1e-9);
    eprintln!(
        "{} tasks took {:.2}s, {} tasks {:.2}s: {ratio:.1} times as long for {:.0} times the tasks (limit {max})",
        small.tasks,
        small.seconds,
        large.tasks,
        large.seconds,
        large.tasks as f64 / small.tasks as f64
    );
    if ratio > max {
        return Err(Failure::Error(format!(
            "the cost per task grows with the run: {ratio:.1} times as long is over the limit of {max}"
        )));
    }
    Ok(())
}
