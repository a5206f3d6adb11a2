//! What the targets that run plans share: a tokio runtime and a nofx runtime on the in-memory
//! store, replaced after a number of runs so that a long session's memory stays flat.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Runs after which the runtime (and the in-memory store holding every run so far) is
/// replaced by a fresh one.
const RUNS_PER_RUNTIME: usize = 500;

/// Where the targets write (run workspaces, policy files): `NOFX_FUZZ_DATA`, else the
/// temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    std::env::var_os("NOFX_FUZZ_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("{name}-{}", std::process::id()))
}

pub struct Env {
    pub tokio: tokio::runtime::Runtime,
    rt: Option<nofx::Runtime>,
    /// Runs (or requests) since the runtime was made.
    pub runs: usize,
    fresh: usize,
    /// Called on each fresh runtime (e.g. to store what requests refer to).
    setup: fn(&tokio::runtime::Runtime, &nofx::Runtime),
}

impl Env {
    /// The runtime, fresh after `RUNS_PER_RUNTIME` runs; `true` when it was just made.
    pub fn rt(&mut self) -> (nofx::Runtime, bool) {
        if self.runs >= RUNS_PER_RUNTIME {
            if let Some(old) = self.rt.take() {
                self.tokio.block_on(old.shutdown());
                let _ = std::fs::remove_dir_all(old.data_dir());
            }
            self.runs = 0;
        }
        let mut made = false;
        if self.rt.is_none() {
            self.fresh += 1;
            let dir = scratch(&format!("rt-{}", self.fresh));
            let rt = self
                .tokio
                .block_on(
                    nofx::Runtime::builder()
                        .data_dir(dir)
                        .memory_store()
                        .command_policy(nofx::tools::CommandPolicy::deny_all())
                        .build(),
                )
                .expect("runtime on the in-memory store");
            (self.setup)(&self.tokio, &rt);
            self.rt = Some(rt);
            made = true;
        }
        (self.rt.clone().expect("made above"), made)
    }
}

/// The process's environment; `setup` runs on each fresh runtime.
pub fn env(setup: fn(&tokio::runtime::Runtime, &nofx::Runtime)) -> MutexGuard<'static, Env> {
    static ENV: OnceLock<Mutex<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        Mutex::new(Env {
            tokio: tokio::runtime::Runtime::new().expect("tokio runtime"),
            rt: None,
            runs: 0,
            fresh: 0,
            setup,
        })
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
}

/// Nothing to set up.
pub fn no_setup(_: &tokio::runtime::Runtime, _: &nofx::Runtime) {}
