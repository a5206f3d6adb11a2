//! `shell`: runs `argv` (no shell string) in the run workspace, in its own process group,
//! with a clean environment. The group is killed on timeout, cancel, drop and when the
//! process that started it dies (see `process.rs`). stdout and stderr are stored whole as
//! artifacts; outputs hold `exit_code` and the first 64 KiB of each stream as text (and, with
//! `stdout_lines`, stdout's non-empty lines as a list).

use super::{Tool, ToolContext, ToolEnv, ToolError, ToolOutput};
use crate::blobs::{BlobError, StoredBlob};
use crate::process::{isolate, watched, GroupKill};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

/// Bytes of each stream kept in the outputs.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Runs commands.
pub struct Shell;

/// How a command ended.
pub(crate) enum Ended {
    /// It exited.
    Exited(ExitStatus),
    /// The token was cancelled; the group is killed.
    Cancelled,
}

/// A finished command: how it ended and its two streams.
pub(crate) struct Finished {
    pub ended: Ended,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// A captured stream: its head and its tail as text, and the whole as a blob.
pub(crate) struct Captured {
    pub head: String,
    /// The last [`TAIL_LIMIT`] bytes (where a test run says what failed).
    pub tail: String,
    pub blob: StoredBlob,
}

/// Bytes of a stream's end kept as text.
pub(crate) const TAIL_LIMIT: usize = 4 * 1024;

async fn capture<R: AsyncRead + Unpin>(mut r: R, env: &ToolEnv) -> Result<Captured, BlobError> {
    let mut w = env.blobs.writer().await?;
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if head.len() < OUTPUT_LIMIT {
            let take = n.min(OUTPUT_LIMIT - head.len());
            head.extend_from_slice(&buf[..take]);
        }
        let keep = &buf[n.saturating_sub(TAIL_LIMIT)..n];
        tail.extend(keep);
        let over = tail.len().saturating_sub(TAIL_LIMIT);
        tail.drain(..over);
        w.write(&buf[..n]).await?;
    }
    let tail: Vec<u8> = tail.into();
    Ok(Captured {
        head: String::from_utf8_lossy(&head).into_owned(),
        tail: String::from_utf8_lossy(&tail).into_owned(),
        blob: w.finish().await?,
    })
}

fn cannot_start(program: &str, why: &str) -> ToolError {
    ToolError::failed(format!("cannot start `{program}`: {why}"))
}

/// What a command nofx runs for a task is told of it: `NOFX_RUN_ID`, `NOFX_TASK_ID`,
/// `NOFX_ATTEMPT`, `NOFX_CORRELATION_ID`.
pub(crate) fn command_vars(
    corr: &crate::domain::Correlation,
    attempt: u32,
) -> Vec<(String, String)> {
    vec![
        ("NOFX_RUN_ID".into(), corr.run.to_string()),
        (
            "NOFX_TASK_ID".into(),
            corr.task
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ),
        ("NOFX_ATTEMPT".into(), attempt.to_string()),
        ("NOFX_CORRELATION_ID".into(), corr.id.to_string()),
    ]
}

/// Runs `argv` in `cwd` in its own process group, capturing both streams, until it exits or
/// `cancel` fires. Shared by the `shell` tool and command gates.
pub(crate) async fn run_command(
    argv: &[String],
    extra_env: &[(String, String)],
    cwd: &Path,
    env: &ToolEnv,
    cancel: &CancellationToken,
) -> Result<Finished, ToolError> {
    let program = argv
        .first()
        .ok_or_else(|| ToolError::InvalidInput("`argv` is empty".into()))?;
    tokio::fs::create_dir_all(cwd)
        .await
        .map_err(|e| ToolError::Io(format!("cannot create workspace {}: {e}", cwd.display())))?;
    // The file the policy checked is the file that starts.
    let exe = env
        .policy
        .resolve(program, Some(cwd))
        .map_err(ToolError::Denied)?
        .ok_or_else(|| cannot_start(program, "no such file"))?;
    let mut cmd = watched(program, &exe, &argv[1..]).map_err(ToolError::failed)?;
    isolate(&mut cmd, cwd, extra_env);
    cmd.stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| cannot_start(program, &e.to_string()))?;
    let mut group = GroupKill(child.id().and_then(|p| i32::try_from(p).ok()));
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ToolError::Io("child stdout missing".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| ToolError::Io("child stderr missing".into()))?;
    let streams = async { tokio::try_join!(capture(stdout, env), capture(stderr, env)) };
    let waited = async {
        let (out, err) = streams.await?;
        let status = child.wait().await;
        Ok::<_, BlobError>((out, err, status))
    };
    tokio::select! {
        res = waited => {
            // The leader is gone; stop anything it left behind in its group.
            group.kill_now();
            let (stdout, stderr, status) = res.map_err(|e| ToolError::Io(e.to_string()))?;
            let status = status.map_err(|e| ToolError::Io(format!("waiting for `{program}`: {e}")))?;
            Ok(Finished { ended: Ended::Exited(status), stdout, stderr })
        }
        _ = cancel.cancelled() => {
            group.kill_now();
            Ok(Finished {
                ended: Ended::Cancelled,
                stdout: Captured { head: String::new(), tail: String::new(), blob: StoredBlob { hash: String::new(), size: 0 } },
                stderr: Captured { head: String::new(), tail: String::new(), blob: StoredBlob { hash: String::new(), size: 0 } },
            })
        }
    }
}

/// The exit code of a status: the code, or 128 + the signal that killed it.
pub(crate) fn exit_code(status: &ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(s)) => 128 + i64::from(s),
        (None, None) => -1,
    }
}

/// Variables a plan may not set for a command: they choose what runs (`PATH`), load code
/// into the allowed program (`LD_PRELOAD` and the dynamic loader's others, glibc's tunables)
/// or into a shell it starts (`ENV`, `BASH_ENV`, …), or are nofx's own (`NOFX_*`). Each would
/// let a plan run what the command policy does not allow.
fn env_refusal(name: &str, value: &str) -> Option<String> {
    const NAMES: [&str; 8] = [
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "CDPATH",
        "GLIBC_TUNABLES",
    ];
    const PREFIXES: [&str; 3] = ["LD_", "DYLD_", "NOFX_"];
    if name.is_empty() || name.contains(['=', '\0']) {
        return Some(format!(
            "`env` name `{}` is not a variable name",
            name.escape_debug()
        ));
    }
    if value.contains('\0') {
        return Some(format!("`env.{name}` contains a NUL byte"));
    }
    if NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Some(format!(
            "`env.{name}` may not be set by a plan: it would change what the command policy allowed to run"
        ));
    }
    None
}

impl Tool for Shell {
    fn name(&self) -> &str {
        "shell"
    }

    fn description(&self) -> &str {
        "Runs a command allowed by the command policy in the run's workspace and returns its exit code, stdout and stderr."
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = inputs
            .get("env")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                env_refusal(k, v.as_str().unwrap_or_default())
                    .map(|why| (format!("/env/{}", k.escape_debug()), why))
            })
            .collect();
        let paths = inputs.get("artifacts").and_then(Value::as_array);
        out.extend(
            paths
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, p)| {
                    let p = p.as_str()?;
                    super::workspace::relative(p, "artifact")
                        .err()
                        .map(|why| (format!("/artifacts/{i}"), why))
                }),
        );
        out
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["argv"],
            "properties": {
                "argv": {"type": "array", "minItems": 1, "items": {"type": "string"},
                         "description": "The command and its arguments (no shell is involved)."},
                "env": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Extra environment variables."},
                "artifacts": {"type": "array", "items": {"type": "string"},
                              "description": "Workspace files to keep as artifacts after success."},
                "stdout_lines": {"type": "boolean",
                                 "description": "Also give stdout as `lines`: its non-empty lines, as a list (e.g. for a `for_each`)."}
            },
            "additionalProperties": false
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let argv: Vec<String> =
                serde_json::from_value(ctx.inputs.get("argv").cloned().unwrap_or_default())
                    .map_err(|_| {
                        ToolError::InvalidInput("`argv` must be a list of strings".into())
                    })?;
            let user_env: Map<String, Value> = ctx
                .inputs
                .get("env")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let keep: Vec<String> =
                serde_json::from_value(ctx.inputs.get("artifacts").cloned().unwrap_or(json!([])))
                    .map_err(|_| {
                    ToolError::InvalidInput("`artifacts` must be a list of strings".into())
                })?;
            for p in &keep {
                super::workspace::relative(p, "artifact").map_err(ToolError::InvalidInput)?;
            }
            let mut env: Vec<(String, String)> = Vec::with_capacity(user_env.len() + 8);
            for (k, v) in &user_env {
                let v = v.as_str().unwrap_or_default();
                // Checked again here: the whole `env` may have come from a reference.
                if let Some(why) = env_refusal(k, v) {
                    return Err(ToolError::InvalidInput(why));
                }
                env.push((k.clone(), v.to_string()));
            }
            env.extend(command_vars(&ctx.corr, ctx.attempt));
            env.push(("NOFX_IDEMPOTENCY_KEY".into(), ctx.idempotency_key.clone()));
            let done = run_command(&argv, &env, &ctx.workspace, &ctx.env, &ctx.cancel).await?;
            let status = match done.ended {
                Ended::Cancelled => return Err(ToolError::Cancelled),
                Ended::Exited(s) => s,
            };
            let code = exit_code(&status);
            let mut outputs = Map::new();
            outputs.insert("exit_code".into(), json!(code));
            // The whole stream is the artifact; the output holds its first 64 KiB and says
            // when there was more.
            let cut = |c: &Captured| c.blob.size > OUTPUT_LIMIT as i64;
            let (out_cut, err_cut) = (cut(&done.stdout), cut(&done.stderr));
            if ctx.inputs.get("stdout_lines") == Some(&Value::Bool(true)) {
                let lines: Vec<Value> = done
                    .stdout
                    .head
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect();
                outputs.insert("lines".into(), Value::Array(lines));
            }
            outputs.insert("stdout".into(), Value::String(done.stdout.head));
            outputs.insert("stderr".into(), Value::String(done.stderr.head));
            for (name, was_cut) in [("stdout_truncated", out_cut), ("stderr_truncated", err_cut)] {
                if was_cut {
                    outputs.insert(name.into(), Value::Bool(true));
                }
            }
            let mut artifacts = vec![
                ("stdout".to_string(), done.stdout.blob),
                ("stderr".to_string(), done.stderr.blob),
            ];
            if code != 0 {
                return Err(ToolError::Failed {
                    message: format!("`{}` exited with code {code}", argv[0]),
                    outputs,
                    artifacts,
                });
            }
            for p in keep {
                let stored = match super::workspace::existing_file(&ctx.workspace, &p, "artifact") {
                    Ok(path) => ctx
                        .env
                        .blobs
                        .put_file(&path)
                        .await
                        .map_err(|e| format!("artifact `{p}` could not be stored: {e}")),
                    Err(why) => Err(why),
                };
                match stored {
                    Ok(blob) => artifacts.push((p, blob)),
                    Err(e) => {
                        return Err(ToolError::Failed {
                            message: e,
                            outputs,
                            artifacts,
                        })
                    }
                }
            }
            Ok(ToolOutput { outputs, artifacts })
        })
    }
}
