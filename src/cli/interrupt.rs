//! Ctrl-C for commands that follow a run. The signal is caught from the start of such a
//! command (before its runtime starts), so a Ctrl-C at any moment ends in an orderly stop
//! that leaves the run resumable, never in the process dying on the default handler. Other
//! commands keep the default: Ctrl-C ends them at once.

use std::sync::OnceLock;
use tokio::sync::watch;

static CAUGHT: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Catches Ctrl-C from now on; `requested` resolves once it was pressed.
pub(crate) fn catch() {
    CAUGHT.get_or_init(|| {
        let (tx, rx) = watch::channel(false);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // Created here, the listener counts signals from this moment on.
            match signal(SignalKind::interrupt()) {
                Ok(mut sig) => {
                    tokio::spawn(async move {
                        sig.recv().await;
                        let _ = tx.send(true);
                    });
                }
                Err(e) => tracing::warn!(error = %e, "Ctrl-C cannot be caught"),
            }
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        rx
    });
}

/// Resolves once Ctrl-C was pressed (at once when it was pressed already). Without `catch`,
/// listens from now on.
pub(crate) async fn requested() {
    match CAUGHT.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|pressed| *pressed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
