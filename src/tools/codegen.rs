//! `codegen`: asks a model for files (`{"files": [{"path", "content"}]}`), writes them into
//! the run workspace (optionally under `dir`) and keeps each as an artifact named by its
//! workspace path. Every path is checked before anything is written: absolute paths, `..`
//! and paths that leave the workspace through a symlink are refused.

use super::llm::{ask_from, ask_structured, model_tool_schema, prompt_input, str_input};
use super::workspace::{relative, stays_inside};
use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::path::PathBuf;

/// The `codegen` tool.
pub struct Codegen;

fn files_schema() -> Value {
    json!({
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["path", "content"],
                    "properties": {
                        "path": {"type": "string", "minLength": 1},
                        "content": {"type": "string"}
                    },
                    "additionalProperties": false
                }
            }
        },
        "additionalProperties": false
    })
}

impl Tool for Codegen {
    fn name(&self) -> &str {
        "codegen"
    }

    fn description(&self) -> &str {
        "Asks a model to write files into the workspace and stores them as artifacts."
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn input_schema(&self) -> Value {
        model_tool_schema(
            "dir",
            json!({"type": "string", "description": "Workspace subdirectory the files go to (default: the workspace)."}),
        )
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let prompt = prompt_input(&ctx.inputs)?;
            let dir = match str_input(&ctx.inputs, "dir") {
                Some(d) if d != "." => relative(&d, "`dir`").map_err(ToolError::InvalidInput)?,
                _ => PathBuf::new(),
            };
            let schema = files_schema();
            let rule = format!(
                "You write files. Answer with one JSON object and nothing else: {{\"files\": [{{\"path\": \"relative/path\", \"content\": \"the whole file\"}}]}}. \
                 Paths are relative to the project directory and never use `..`.\nJSON Schema of the answer:\n{schema}"
            );
            let system = Some(match str_input(&ctx.inputs, "system") {
                Some(s) => format!("{s}\n\n{rule}"),
                None => rule,
            });
            let ask = ask_from(&ctx.inputs, prompt, system, 8192);
            let answer = ask_structured(&ctx.models, ask, Some(&schema), "codegen").await?;
            let files = answer
                .json
                .as_ref()
                .and_then(|j| j.get("files"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let root = std::fs::canonicalize(&ctx.workspace).map_err(|e| {
                ToolError::Io(format!(
                    "cannot open the workspace {}: {e}",
                    ctx.workspace.display()
                ))
            })?;
            // Check every path before writing any, so a refused answer writes nothing.
            let mut planned = Vec::with_capacity(files.len());
            let mut refused = Vec::new();
            for f in &files {
                let p = f.get("path").and_then(Value::as_str).unwrap_or_default();
                let content = f.get("content").and_then(Value::as_str).unwrap_or_default();
                match relative(p, "path") {
                    Ok(rel) => {
                        let rel = dir.join(rel);
                        if stays_inside(&root, &root.join(&rel)) {
                            planned.push((rel, content.to_string()));
                        } else {
                            refused.push(format!("path `{p}` leaves the workspace"));
                        }
                    }
                    Err(e) => refused.push(e),
                }
            }
            if !refused.is_empty() {
                let mut outputs = serde_json::Map::new();
                answer.usage_outputs(&mut outputs);
                return Err(ToolError::Failed {
                    message: format!(
                        "codegen refused the model's files (nothing was written): {}",
                        refused.join("; ")
                    ),
                    outputs,
                    artifacts: Vec::new(),
                });
            }
            let mut out = ToolOutput::default();
            let mut written = Vec::new();
            for (rel, content) in planned {
                let target = root.join(&rel);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        ToolError::Io(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                tokio::fs::write(&target, content.as_bytes())
                    .await
                    .map_err(|e| {
                        ToolError::Io(format!("cannot write {}: {e}", target.display()))
                    })?;
                let blob = ctx
                    .env
                    .blobs
                    .put(content.as_bytes())
                    .await
                    .map_err(|e| ToolError::Io(e.to_string()))?;
                let name = rel.to_string_lossy().replace('\\', "/");
                written.push(json!(name));
                out.artifacts.push((name, blob));
            }
            out.outputs.insert("files".into(), Value::Array(written));
            answer.usage_outputs(&mut out.outputs);
            Ok(out)
        })
    }
}
