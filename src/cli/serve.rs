//! `nofx serve`: flags and messages around [`crate::service::Service`] (the runtime, the HTTP
//! API, the retention sweep and the drain).

use super::{CliResult, Failure, Global};
use crate::service::{Service, ServiceOptions};
use clap::Args;
use std::time::Duration;

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
    /// Do not serve the dashboard (`/ui/`).
    #[arg(long)]
    no_ui: bool,
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
    let retention = super::gc::load_retention(g)?;
    let listener = tokio::net::TcpListener::bind(&a.bind)
        .await
        .map_err(|e| Failure::Input(format!("cannot listen on {}: {e}", a.bind)))?;
    // A service runs no command that policies/tools.toml does not allow.
    let rt = super::builder(g, crate::tools::CommandPolicy::deny_all())?
        .fleet(true)
        .build()
        .await?;
    if let Err(e) = super::load_templates(g, &rt).await {
        rt.shutdown().await;
        return Err(e);
    }
    let opts = ServiceOptions {
        api: crate::api::ApiOptions {
            requests_per_second: rate,
            ui: !a.no_ui,
        },
        grace: Duration::from_secs_f64(a.grace),
        retention: Some(retention),
    };
    let service = Service::start(rt, listener, opts).await?;
    let addr = service
        .local_addr()
        .map_err(|e| Failure::Error(e.to_string()))?;
    eprintln!(
        "nofx serving on http://{addr} (took {} unfinished run(s) at start; runs whose process stops are taken as their leases expire)",
        service.resumed().len()
    );
    let grace = a.grace;
    let stop = async move {
        stop_signal().await;
        eprintln!("stopping: no new requests; waiting up to {grace}s for runs in flight");
    };
    let served = service.run(stop).await;
    eprintln!("stopped");
    served.map_err(|e| Failure::Error(format!("server failed: {e}")))
}
