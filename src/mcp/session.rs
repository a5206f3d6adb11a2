//! One connection to an MCP server (the `rmcp` client): a child process speaking stdio,
//! started under the same watchdog as `shell` commands (its own process group, killed with
//! whatever started it), or a streamable HTTP endpoint. It lists the server's tools (those
//! its allow-list keeps) and calls them with the server's timeout.

use super::config::{resolve_env, McpServer, McpTransport};
use crate::process::GroupKill;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How much of a server's stderr is kept for error messages.
const STDERR_TAIL: usize = 2048;

/// A tool a server offers, as nofx sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    /// Its name on the server.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// `readOnlyHint`.
    pub read_only: Option<bool>,
    /// `idempotentHint`.
    pub idempotent: Option<bool>,
    /// `destructiveHint`.
    pub destructive: Option<bool>,
}

impl McpTool {
    /// Whether a call cut off by a crash may run again: the server says the tool is
    /// idempotent or read-only.
    pub fn repeat_safe(&self) -> bool {
        self.idempotent == Some(true) || self.read_only == Some(true)
    }

    /// Its annotations as a JSON object (`readOnlyHint`, `idempotentHint`,
    /// `destructiveHint`; `null` when the server does not say).
    pub fn annotations(&self) -> Value {
        json!({"readOnlyHint": self.read_only, "idempotentHint": self.idempotent, "destructiveHint": self.destructive})
    }
}

/// What a call gave: its text (structured content as JSON text) and whether it is an error.
pub(crate) struct CallOutcome {
    pub text: String,
    pub is_error: bool,
}

/// The last bytes a child wrote to stderr.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<u8>>>);

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.extend(bytes);
        while t.len() > STDERR_TAIL {
            t.pop_front();
        }
    }

    fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = t.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

/// A started server.
pub(crate) struct Session {
    server: McpServer,
    service: RunningService<RoleClient, ClientConfig>,
    tools: Vec<McpTool>,
    /// A child's process group (killed on stop and drop) and its stderr.
    group: Mutex<GroupKill>,
    stderr: Tail,
    _child: Option<tokio::process::Child>,
    /// The values its `env` read from nofx's environment: taken out of what it says.
    secrets: Vec<String>,
}

fn described(server: &McpServer) -> String {
    match &server.transport {
        McpTransport::Command(argv) => {
            format!("MCP server `{}` (`{}`)", server.name, argv.join(" "))
        }
        McpTransport::Url(url) => format!("MCP server `{}` ({url})", server.name),
    }
}

impl Session {
    /// Starts (or connects to) `server`; a child runs in `workspace` (joined with the
    /// server's `cwd`).
    ///
    /// # Errors
    /// A message naming the server, its command or URL, and (for a child) its stderr tail.
    pub async fn start(server: &McpServer, workspace: &Path) -> Result<Self, String> {
        // The values read from nofx's environment are the server's secrets: never in what
        // it says back.
        let (env, secrets) = {
            let read = std::cell::RefCell::new(Vec::new());
            let lookup = |k: &str| {
                let v = std::env::var(k).ok();
                if let Some(v) = &v {
                    read.borrow_mut().push(v.clone());
                }
                v
            };
            let mut env = Vec::new();
            for (k, v) in &server.env {
                let value = resolve_env(v, &lookup)
                    .map_err(|why| format!("{}: `env.{k}`: {why}", described(server)))?;
                env.push((k.clone(), value));
            }
            (env, read.into_inner())
        };
        let started = match &server.transport {
            McpTransport::Command(argv) => Self::spawn(server, argv, &env, workspace).await,
            McpTransport::Url(url) => Self::connect(server, url, &env).await,
        };
        let mut session = started.map_err(|e| crate::redact::redacted(e, &secrets))?;
        session.secrets = secrets;
        let listed = tokio::time::timeout(server.timeout, session.service.list_all_tools()).await;
        let tools = match listed {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(session.failure(&format!("listing its tools failed: {e}"))),
            Err(_) => {
                return Err(session.failure(&format!(
                    "listing its tools took longer than {}s",
                    server.timeout.as_secs_f64()
                )))
            }
        };
        session.tools = tools
            .into_iter()
            .filter(|t| {
                server
                    .tools
                    .as_ref()
                    .is_none_or(|allow| allow.iter().any(|a| a == t.name.as_ref()))
            })
            .map(|t| {
                let a = t.annotations.clone().unwrap_or_default();
                McpTool {
                    name: t.name.to_string(),
                    description: t.description.as_deref().unwrap_or_default().to_string(),
                    input_schema: Value::Object((*t.input_schema).clone()),
                    read_only: a.read_only_hint,
                    idempotent: a.idempotent_hint,
                    destructive: a.destructive_hint,
                }
            })
            .collect();
        Ok(session)
    }

    async fn spawn(
        server: &McpServer,
        argv: &[String],
        env: &[(String, String)],
        workspace: &Path,
    ) -> Result<Self, String> {
        use std::process::Stdio;
        let cwd = match &server.cwd {
            Some(c) => workspace.join(c),
            None => workspace.to_path_buf(),
        };
        let program = &argv[0];
        // A relative path names a file from where nofx runs (as its flags' paths do).
        let here = std::env::current_dir().ok();
        let exe = crate::process::locate(program, here.as_deref())
            .filter(|p| crate::process::is_executable(p))
            .ok_or_else(|| format!("{}: cannot start `{program}`: not found", described(server)))?;
        let mut cmd = crate::process::watched(program, &exe, &argv[1..])
            .map_err(|e| format!("{}: {e}", described(server)))?;
        crate::process::isolate(&mut cmd, &cwd, env);
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: cannot start `{program}`: {e}", described(server)))?;
        let group = child.id().and_then(|p| i32::try_from(p).ok());
        let (Some(stdout), Some(stdin), Some(mut stderr)) =
            (child.stdout.take(), child.stdin.take(), child.stderr.take())
        else {
            return Err(format!(
                "{}: its standard streams are missing",
                described(server)
            ));
        };
        let tail = Tail::default();
        let t = tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                t.push(&buf[..n]);
            }
        });
        let kill = |why: String| {
            GroupKill(group).kill_now();
            why
        };
        let service = match tokio::time::timeout(
            server.timeout,
            ClientConfig::default().serve((stdout, stdin)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // Let the child's last words arrive.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(300), child.wait()).await;
                return Err(kill(with_tail(
                    format!("{} did not start: {e}", described(server)),
                    &tail.text(),
                )));
            }
            Err(_) => {
                return Err(kill(with_tail(
                    format!(
                        "{} did not answer within {}s",
                        described(server),
                        server.timeout.as_secs_f64()
                    ),
                    &tail.text(),
                )))
            }
        };
        Ok(Self {
            server: server.clone(),
            service,
            tools: Vec::new(),
            group: Mutex::new(GroupKill(group)),
            stderr: tail,
            _child: Some(child),
            secrets: Vec::new(),
        })
    }

    async fn connect(
        server: &McpServer,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Self, String> {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        use rmcp::transport::StreamableHttpClientTransport;
        super::use_ring_for_tls();
        let mut map = std::collections::HashMap::new();
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                format!(
                    "{}: `env.{k}` is not an HTTP header name",
                    described(server)
                )
            })?;
            let value = http::HeaderValue::from_str(v).map_err(|_| {
                format!(
                    "{}: the value of `env.{k}` is not a valid header value",
                    described(server)
                )
            })?;
            map.insert(name, value);
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.to_string()).custom_headers(map),
        );
        let service =
            match tokio::time::timeout(server.timeout, ClientConfig::default().serve(transport))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(format!("{}: cannot connect: {e}", described(server))),
                Err(_) => {
                    return Err(format!(
                        "{}: no answer within {}s",
                        described(server),
                        server.timeout.as_secs_f64()
                    ))
                }
            };
        Ok(Self {
            server: server.clone(),
            service,
            tools: Vec::new(),
            group: Mutex::new(GroupKill(None)),
            stderr: Tail::default(),
            _child: None,
            secrets: Vec::new(),
        })
    }

    /// The tools agents may use.
    pub fn tools(&self) -> &[McpTool] {
        &self.tools
    }

    fn failure(&self, what: &str) -> String {
        crate::redact::redacted(
            with_tail(
                format!("{}: {what}", described(&self.server)),
                &self.stderr.text(),
            ),
            &self.secrets,
        )
    }

    /// Calls `tool` with `args`. A server that dies, errs or runs past its timeout gives an
    /// error outcome, never a hang.
    pub async fn call(&self, tool: &str, args: Map<String, Value>) -> CallOutcome {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let res = tokio::time::timeout(self.server.timeout, self.service.call_tool(params)).await;
        match res {
            Ok(Ok(r)) => {
                let mut parts: Vec<String> = r
                    .content
                    .iter()
                    .map(|b| {
                        let v = serde_json::to_value(b).unwrap_or(Value::Null);
                        match v["type"].as_str() {
                            Some("text") => v["text"].as_str().unwrap_or_default().to_string(),
                            Some(kind) => format!(
                                "[{kind} content{}]",
                                v["mimeType"]
                                    .as_str()
                                    .map(|m| format!(" ({m})"))
                                    .unwrap_or_default()
                            ),
                            None => String::new(),
                        }
                    })
                    .collect();
                if parts.iter().all(String::is_empty) {
                    if let Some(s) = &r.structured_content {
                        parts = vec![s.to_string()];
                    }
                }
                CallOutcome {
                    text: crate::redact::redacted(parts.join("\n"), &self.secrets),
                    is_error: r.is_error == Some(true),
                }
            }
            Ok(Err(e)) => CallOutcome {
                text: format!(
                    "error: {}",
                    self.failure(&format!("the call of `{tool}` failed: {e}"))
                ),
                is_error: true,
            },
            Err(_) => CallOutcome {
                text: format!(
                    "error: {}",
                    self.failure(&format!(
                        "the call of `{tool}` took longer than {}s",
                        self.server.timeout.as_secs_f64()
                    ))
                ),
                is_error: true,
            },
        }
    }

    /// Whether the connection is gone (a child that exited, a closed transport).
    pub fn is_closed(&self) -> bool {
        self.service.is_transport_closed()
    }

    /// Stops a child server: its whole process group is killed.
    pub fn kill(&self) {
        self.group
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kill_now();
    }
}

fn with_tail(message: String, tail: &str) -> String {
    if tail.is_empty() {
        message
    } else {
        format!("{message}; its stderr ends with: {tail}")
    }
}
