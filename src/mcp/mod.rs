//! MCP servers as tools: `policies/mcp.toml` names the servers (`config.rs`); agents call
//! their tools as `mcp:SERVER.TOOL`. A run starts a server the first time one of its loops
//! needs it and stops it when the run ends here (a child server's whole process group is
//! killed; it also dies with the process that started it). `session.rs` is the `rmcp`
//! client.

mod config;
mod session;

pub use config::{McpConfig, McpServer, McpTransport};
pub use session::McpTool;
pub(crate) use session::Session;

use crate::domain::RunId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The servers one run has started.
pub(crate) struct RunServers {
    config: Arc<McpConfig>,
    workspace: PathBuf,
    started: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
}

impl RunServers {
    /// Server `name`, started now unless it already runs (a server whose connection closed
    /// is started again).
    ///
    /// # Errors
    /// An unknown server, or one that does not start (naming its command and stderr tail).
    pub async fn session(&self, name: &str) -> Result<Arc<Session>, String> {
        let Some(server) = self.config.servers.get(name) else {
            return Err(self.config.unknown(name));
        };
        let mut started = self.started.lock().await;
        if let Some(s) = started.get(name) {
            if !s.is_closed() {
                return Ok(s.clone());
            }
            s.kill();
        }
        let s = Arc::new(Session::start(server, &self.workspace).await?);
        started.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// Stops every server of the run.
    fn stop(&self) {
        if let Ok(mut started) = self.started.try_lock() {
            for (_, s) in started.drain() {
                s.kill();
            }
        }
    }
}

impl Drop for RunServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The servers of every run this process executes.
pub(crate) struct McpHub {
    config: Arc<McpConfig>,
    runs: Mutex<HashMap<RunId, Arc<RunServers>>>,
}

impl McpHub {
    pub fn new(config: McpConfig) -> Self {
        Self {
            config: Arc::new(config),
            runs: Mutex::default(),
        }
    }

    /// The servers of `run`, whose children run in `workspace`.
    pub fn for_run(&self, run: RunId, workspace: &Path) -> Arc<RunServers> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(run)
            .or_insert_with(|| {
                Arc::new(RunServers {
                    config: self.config.clone(),
                    workspace: workspace.to_path_buf(),
                    started: tokio::sync::Mutex::default(),
                })
            })
            .clone()
    }

    /// `run` stopped executing here: its servers stop.
    pub fn end_run(&self, run: RunId) {
        let gone = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run);
        if let Some(s) = gone {
            s.stop();
        }
    }
}

/// Starts `server` in `dir`, lists the tools agents may use, and stops it (`nofx mcp ls`).
///
/// # Errors
/// A server that does not start, naming its command and the tail of its stderr.
pub async fn list_tools(server: &McpServer, dir: &Path) -> Result<Vec<McpTool>, String> {
    let s = Session::start(server, dir).await?;
    let tools = s.tools().to_vec();
    s.kill();
    Ok(tools)
}

/// Makes ring the process's TLS crypto provider (once; a provider installed earlier stays).
/// The HTTP clients of MCP and of trace export use rustls without choosing one, as the store's
/// and the model providers' clients use ring.
pub(crate) fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
