//! `nofx serve`: the runtime and the HTTP API in one process.

use super::{CliResult, Failure, Global};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    bind: String,
    /// Seconds runs in flight may take to finish after SIGTERM before they are interrupted
    /// (they stay resumable).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    grace: f64,
    /// Requests per second each API key may make (and its burst).
    #[arg(long, default_value_t = 50, value_name = "N")]
    rate_limit: u32,
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn serve(g: &Global, a: ServeArgs) -> CliResult {
    if !(a.grace.is_finite() && a.grace >= 0.0) {
        return Err(Failure::Input(format!(
            "--grace must be 0 or more seconds, got {}",
            a.grace
        )));
    }
    let Some(rate) = std::num::NonZeroU32::new(a.rate_limit) else {
        return Err(Failure::Input("--rate-limit must be at least 1".into()));
    };
    let opts = nofx::api::ApiOptions {
        requests_per_second: rate,
    };
    let retention = super::gc::load_retention(g)?;
    let listener = tokio::net::TcpListener::bind(&a.bind)
        .await
        .map_err(|e| Failure::Input(format!("cannot listen on {}: {e}", a.bind)))?;
    // A service runs no command that policies/tools.toml does not allow.
    let rt = super::builder(g, nofx::tools::CommandPolicy::deny_all())?
        .fleet(true)
        .build()
        .await?;
    if let Err(e) = super::load_templates(g, &rt).await {
        rt.shutdown().await;
        return Err(e);
    }
    let taken = rt.resume_orphans().await?;
    if !taken.is_empty() {
        tracing::info!(runs = taken.len(), "resumed unfinished runs");
    }
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Error(e.to_string()))?;
    eprintln!(
        "nofx serving on http://{addr} (took {} unfinished run(s) at start; runs whose process stops are taken as their leases expire)",
        taken.len()
    );
    let sweeper = tokio::spawn(sweep_periodically(
        rt.clone(),
        g.data_dir.clone(),
        retention,
    ));
    let served = nofx::api::serve(rt.clone(), opts, listener, stop_signal()).await;
    sweeper.abort();
    eprintln!(
        "stopping: no new requests; waiting up to {}s for runs in flight",
        a.grace
    );
    let end = Instant::now() + Duration::from_secs_f64(a.grace);
    while Instant::now() < end && !rt.active_runs().await.unwrap_or_default().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rt.shutdown().await;
    eprintln!("stopped");
    served.map_err(|e| Failure::Error(format!("server failed: {e}")))
}

/// Applies the retention policy every `sweep_every`, first after one period; a failed sweep
/// is logged and tried again next time.
async fn sweep_periodically(
    rt: nofx::Runtime,
    data_dir: std::path::PathBuf,
    policy: nofx::retention::RetentionPolicy,
) {
    let mut tick = tokio::time::interval(policy.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = nofx::domain::time::now_ms();
        match nofx::retention::sweep(rt.store(), &data_dir, &policy, false, now).await {
            Ok(r) => tracing::info!(report = %super::gc::describe(&r), "retention sweep"),
            Err(e) => {
                tracing::warn!(error = %e, "retention sweep failed; trying again next period")
            }
        }
    }
}
