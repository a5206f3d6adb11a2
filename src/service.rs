//! What `nofx serve` is, as a library call: a runtime serving the HTTP API, having taken the
//! unfinished runs no live process owns, sweeping old runs by the retention policy on its
//! period, and on shutdown draining: no new requests, runs in flight get a grace period to
//! finish, then the runtime stops in order (what is still running stays resumable).
//!
//! ```no_run
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = nofx::Runtime::builder().fleet(true).build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let service = nofx::service::Service::start(rt, listener, Default::default()).await?;
//! println!("serving on {}", service.local_addr()?);
//! service.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

use crate::api::ApiOptions;
use crate::retention::RetentionPolicy;
use crate::{RunId, Runtime, RuntimeError};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a service runs.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The API's settings.
    pub api: ApiOptions,
    /// How long runs in flight may take to finish after the shutdown signal before they are
    /// interrupted (they stay resumable).
    pub grace: Duration,
    /// What the periodic sweep deletes (in the runtime's store and data directory); `None`:
    /// no sweep.
    pub retention: Option<RetentionPolicy>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            api: ApiOptions::default(),
            grace: Duration::from_secs(30),
            retention: None,
        }
    }
}

/// A runtime ready to serve: it has taken the runs nobody executed.
pub struct Service {
    rt: Runtime,
    listener: tokio::net::TcpListener,
    opts: ServiceOptions,
    resumed: Vec<RunId>,
}

impl Service {
    /// Takes (claims and executes) every unfinished run no live process owns; the others
    /// are taken as their owners' leases expire (when the runtime is in a fleet).
    ///
    /// # Errors
    /// Store failures; the runtime is shut down.
    pub async fn start(
        rt: Runtime,
        listener: tokio::net::TcpListener,
        opts: ServiceOptions,
    ) -> Result<Self, RuntimeError> {
        let resumed = match rt.resume_orphans().await {
            // The runs it could not resume were logged, each with why.
            Ok(r) => r.resumed,
            Err(e) => {
                rt.shutdown().await;
                return Err(e);
            }
        };
        if !resumed.is_empty() {
            tracing::info!(runs = resumed.len(), "resumed unfinished runs");
        }
        Ok(Self {
            rt,
            listener,
            opts,
            resumed,
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The runs it took at start.
    pub fn resumed(&self) -> &[RunId] {
        &self.resumed
    }

    /// The runtime it serves.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Serves until `shutdown` resolves, then drains and stops the runtime.
    ///
    /// # Errors
    /// The server failed (the runtime is stopped in order all the same).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        let Self {
            rt, listener, opts, ..
        } = self;
        let sweeper = opts.retention.clone().map(|policy| {
            tokio::spawn(sweep_periodically(
                rt.clone(),
                rt.data_dir().to_path_buf(),
                policy,
            ))
        });
        let served = crate::api::serve(rt.clone(), opts.api, listener, shutdown).await;
        if let Some(s) = sweeper {
            s.abort();
        }
        tracing::info!(
            grace_s = opts.grace.as_secs_f64(),
            "stopping: no new requests; waiting for runs in flight"
        );
        let end = Instant::now() + opts.grace;
        while Instant::now() < end && !rt.active_runs().await.unwrap_or_default().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rt.shutdown().await;
        served
    }
}

/// Applies the retention policy every `sweep_every`, first after one period; a failed sweep
/// is logged and tried again next time.
async fn sweep_periodically(rt: Runtime, data_dir: PathBuf, policy: RetentionPolicy) {
    let mut tick = tokio::time::interval(policy.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = crate::domain::time::now_ms();
        match crate::retention::sweep(rt.store(), &data_dir, &policy, false, now).await {
            Ok(r) => tracing::info!(report = %r, "retention sweep"),
            Err(e) => {
                tracing::warn!(error = %e, "retention sweep failed; trying again next period")
            }
        }
    }
}
