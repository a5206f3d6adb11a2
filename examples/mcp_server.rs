//! A small MCP server (built with `rmcp`) for agents to use: it reads, lists and appends to
//! files under the directory it runs in, and counts words. nofx starts it per run, in the
//! run's workspace, when `policies/mcp.toml` names it:
//!
//! ```toml
//! [servers.files]
//! command = ["cargo", "run", "-q", "--example", "mcp_server"]   # or the built binary
//! ```
//!
//! It speaks MCP over stdio by default; `--http ADDR` serves streamable HTTP at
//! `http://ADDR/mcp` instead (it prints the address it bound first, so `127.0.0.1:0` works).
//! Paths are confined to the directory it started in, symlinks included.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Longest file `read_file` returns.
const MAX_READ: u64 = 256 * 1024;

#[derive(Debug, Clone)]
struct Files {
    root: PathBuf,
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct PathArg {
    /// A path relative to the server's directory.
    path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct DirArg {
    /// A directory relative to the server's directory (default: the directory itself).
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AppendArg {
    /// A path relative to the server's directory.
    path: String,
    /// The line to append.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TextArg {
    /// The text to count.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SleepArg {
    /// How long, in seconds (at most 600).
    seconds: f64,
}

impl Files {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            tool_router: Self::tool_router(),
        }
    }

    /// `rel` under the root, refusing anything that leaves it (`..`, absolute paths,
    /// symlinks pointing out).
    fn inside(&self, rel: &str, must_exist: bool) -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!("`{rel}` is not a path inside the directory"));
        }
        let full = self.root.join(p);
        let check = if must_exist {
            full.clone()
        } else {
            full.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone())
        };
        let real = check.canonicalize().map_err(|e| format!("`{rel}`: {e}"))?;
        if !real.starts_with(&self.root) {
            return Err(format!("`{rel}` leads outside the directory"));
        }
        Ok(full)
    }
}

#[tool_router]
impl Files {
    #[tool(
        description = "Reads a text file (at most 256 KiB).",
        annotations(read_only_hint = true)
    )]
    fn read_file(
        &self,
        Parameters(PathArg { path }): Parameters<PathArg>,
    ) -> Result<String, String> {
        let full = self.inside(&path, true)?;
        let len = std::fs::metadata(&full)
            .map_err(|e| format!("`{path}`: {e}"))?
            .len();
        if len > MAX_READ {
            return Err(format!(
                "`{path}` has {len} bytes; at most {MAX_READ} are read"
            ));
        }
        std::fs::read_to_string(&full).map_err(|e| format!("`{path}`: {e}"))
    }

    #[tool(
        description = "Lists the files and directories of a directory, one a line (directories end with /).",
        annotations(read_only_hint = true)
    )]
    fn list_files(&self, Parameters(DirArg { dir }): Parameters<DirArg>) -> Result<String, String> {
        let rel = dir.unwrap_or_else(|| ".".into());
        let full = if rel == "." {
            self.root.clone()
        } else {
            self.inside(&rel, true)?
        };
        let mut names: Vec<String> = std::fs::read_dir(&full)
            .map_err(|e| format!("`{rel}`: {e}"))?
            .filter_map(Result::ok)
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        Ok(names.join("\n"))
    }

    #[tool(
        description = "Appends one line of text to a file (creating it).",
        annotations(destructive_hint = false, idempotent_hint = false)
    )]
    fn append_line(
        &self,
        Parameters(AppendArg { path, text }): Parameters<AppendArg>,
    ) -> Result<String, String> {
        use std::io::Write;
        let full = self.inside(&path, false)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&full)
            .map_err(|e| format!("`{path}`: {e}"))?;
        writeln!(f, "{text}").map_err(|e| format!("`{path}`: {e}"))?;
        Ok(format!("appended {} bytes to {path}", text.len() + 1))
    }

    #[tool(
        description = "Counts the lines, words and characters of a text.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    fn word_count(&self, Parameters(TextArg { text }): Parameters<TextArg>) -> String {
        serde_json::json!({
            "lines": text.lines().count(),
            "words": text.split_whitespace().count(),
            "chars": text.chars().count(),
        })
        .to_string()
    }

    #[tool(description = "Waits, then says so (writes its process id to mcp-sleep.pid first).")]
    async fn sleep(
        &self,
        Parameters(SleepArg { seconds }): Parameters<SleepArg>,
    ) -> Result<String, String> {
        std::fs::write(
            self.root.join("mcp-sleep.pid"),
            std::process::id().to_string(),
        )
        .map_err(|e| e.to_string())?;
        let secs = seconds.clamp(0.0, 600.0);
        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
        Ok(format!("slept {secs}s"))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Files {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::current_dir()?.canonicalize()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let server = Files::new(root).serve(rmcp::transport::stdio()).await?;
            server.waiting().await?;
        }
        [flag, addr] if flag == "--http" => {
            use rmcp::transport::streamable_http_server::{
                session::local::LocalSessionManager, StreamableHttpServerConfig,
                StreamableHttpService,
            };
            let service: StreamableHttpService<Files, LocalSessionManager> =
                StreamableHttpService::new(
                    move || Ok(Files::new(root.clone())),
                    Default::default(),
                    StreamableHttpServerConfig::default(),
                );
            let app = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
            println!("{}", listener.local_addr()?);
            axum::serve(listener, app).await?;
        }
        _ => {
            eprintln!("usage: mcp_server [--http ADDR]");
            std::process::exit(2);
        }
    }
    Ok(())
}
