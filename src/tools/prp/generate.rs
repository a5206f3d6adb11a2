//! `prp:generate`: a model writes a PRP. The requirements are an INITIAL file (FEATURE /
//! EXAMPLES / DOCUMENTATION / OTHER CONSIDERATIONS) or what a gathering run found (its
//! answers and `repo:analyze` outputs); nofx adds excerpts of the files they name (capped by
//! size), the PRP's JSON Schema and the runtime's tools. Each answer is checked as `nofx prp
//! validate` would (its own problems, then what each step runs, against this runtime's tools,
//! agents and command policy); the problems go back for a repair, up to [`MAX_ROUNDS`]
//! answers in all. The accepted PRP carries the model's 1–10 confidence of success in one
//! pass, with its reason. Every call is a usage row of the task's run.

use super::super::agent::cut;
use super::super::{Tool, ToolContext, ToolError, ToolOutput};
use super::file_inside;
use crate::domain::plan::{validate, ToolCatalog};
use crate::domain::prp::{prp_schema, PrpSource};
use crate::models::{answer_body, Ask, Message};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

/// Answers asked for in all (the first and its repairs).
pub const MAX_ROUNDS: u32 = 3;
/// Most bytes of one file named by the requirements, shown to the model.
const FILE_BYTES: usize = 4 * 1024;
/// Most bytes of every such file together.
const FILES_BYTES: usize = 24 * 1024;
/// Most bytes of the requirements.
const REQUIREMENTS_BYTES: usize = 64 * 1024;

/// The `prp:generate` tool.
pub(crate) struct PrpGenerate;

/// Paths of the workspace the requirements mention: words with a `/` or a file extension
/// that name a file there.
fn named_files(text: &str, root: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "`'\"(),;<>[]{}".contains(c)) {
        let w = word.trim_end_matches(['.', ':']);
        if w.is_empty()
            || w.len() > 200
            || w.contains("://")
            || !(w.contains('/') || w.contains('.'))
        {
            continue;
        }
        if file_inside(root, w).is_ok() && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    out
}

/// The problems of a model's answer, as `nofx prp validate` would list them (the model
/// configuration apart).
fn problems(text: &str, ctx: &ToolContext) -> Result<PrpSource, Vec<String>> {
    let body = answer_body(text);
    let src = PrpSource::parse(body, crate::domain::plan::Format::Json, None)
        .or_else(|_| PrpSource::parse(body, crate::domain::plan::Format::Yaml, None))
        .map_err(|e| e.problems.iter().map(show).collect::<Vec<_>>())?;
    let prp = &src.prp;
    let link = &ctx.link.0;
    // The runtime's plan check less the model configuration (a tool reaches no further).
    let mut found = prp.all_problems(&|rel| file_inside(&ctx.workspace, rel), |plan| {
        let mut errors = validate(plan, &Map::new(), link.tools(), link.agents())
            .err()
            .map_or_else(Vec::new, |e| e.0);
        let denied = ctx.env.policy.plan_problems(&plan.plan);
        errors.extend(crate::domain::plan::PlanErrors::at_tasks(plan, denied).0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(crate::domain::plan::PlanErrors(errors))
        }
    });
    if prp.confidence.is_none() {
        found.push((
            "confidence".into(),
            "give your confidence that the PRP succeeds in one pass: {score: 1-10, reason}".into(),
        ));
    }
    if found.is_empty() {
        Ok(src)
    } else {
        Err(found
            .into_iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect())
    }
}

fn show(p: &crate::domain::prp::Problem) -> String {
    if p.path.is_empty() {
        p.message.clone()
    } else {
        format!("{}: {}", p.path, p.message)
    }
}

fn system(ctx: &ToolContext) -> String {
    let mut tools = ctx.link.0.tools().names();
    tools.retain(|n| !crate::domain::prp::is_prp_tool(n));
    tools.sort();
    let agents: Vec<String> = ctx
        .link
        .0
        .agents()
        .iter()
        .map(|a| format!("{} (capabilities: {})", a.id, a.capabilities.join(", ")))
        .collect();
    format!(
        "You write PRPs (Product Requirements Prompts) for nofx: a PRD plus the curated context an \
         implementer needs to ship on the first pass, with executable validation. Answer with one \
         JSON object that satisfies the PRP JSON Schema below, and nothing else.\n\
         Rules:\n\
         - Every step has at least one deterministic gate (`command`, `pattern` or `json_schema`); \
           put the project's tests in `context.validation_rules` and name them from the steps.\n\
         - Steps use `codegen` (a model writes files), `agent: {{prompt}}`, or `tool` with `inputs` \
           (tools: {}).\n\
         - Files in `context.examples` and `context.documentation` must exist in the project; \
           give each a `why`.\n\
         - List the tests the change is judged by in `protected` so no step can edit them.\n\
         - Set `confidence` to your 1-10 judgement that the PRP succeeds in one pass, with its reason.\n\
         Agents: {}\n\nPRP JSON Schema:\n{}",
        tools.join(", "),
        if agents.is_empty() { "none".into() } else { agents.join("; ") },
        prp_schema()
    )
}

impl Tool for PrpGenerate {
    fn name(&self) -> &str {
        "prp:generate"
    }

    fn description(&self) -> &str {
        "A model writes a PRP from requirements (an INITIAL file, or a gathering run's answers and analysis), checked and repaired."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "initial": {"type": "string", "maxLength": REQUIREMENTS_BYTES},
                "requirements": {"type": "object"},
                "max_tokens": {"type": "integer", "minimum": 256, "maximum": 65536}
            }
        })
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let requirements = match (ctx.inputs.get("initial").and_then(Value::as_str), ctx.inputs.get("requirements")) {
                (Some(text), _) => format!("The INITIAL file:\n{text}"),
                (None, Some(r)) => format!(
                    "What requirements gathering found (the user's answers and the analysis of the project):\n{}",
                    serde_json::to_string_pretty(r).unwrap_or_default()
                ),
                (None, None) => {
                    return Err(ToolError::InvalidInput(
                        "give `initial` (an INITIAL file's text) or `requirements`".into(),
                    ))
                }
            };
            let requirements = cut(&requirements, REQUIREMENTS_BYTES);
            let mut prompt = format!("{requirements}\n");
            let mut budget = FILES_BYTES;
            for f in named_files(&requirements, &ctx.workspace) {
                let Ok(bytes) = tokio::fs::read(ctx.workspace.join(&f)).await else {
                    continue;
                };
                if budget == 0 {
                    break;
                }
                let text = cut(&String::from_utf8_lossy(&bytes), FILE_BYTES.min(budget));
                budget = budget.saturating_sub(text.len());
                prompt.push_str(&format!("\nThe file `{f}`:\n```\n{text}\n```\n"));
            }
            prompt.push_str("\nWrite the PRP.");
            let mut ask = Ask {
                system: Some(system(&ctx)),
                messages: vec![Message::user(prompt)],
                max_tokens: ctx
                    .inputs
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .map_or(8192, |n| n as u32),
                temperature: Some(0.2),
                requires_reasoning: true,
                tools: Vec::new(),
                model: None,
            };
            let mut last = Vec::new();
            for round in 1..=MAX_ROUNDS {
                let answer = ctx.models.complete(&ask).await?;
                match problems(&answer.text, &ctx) {
                    Ok(src) => {
                        let doc = serde_json::to_value(&src.prp).unwrap_or(Value::Null);
                        let blob = ctx
                            .env
                            .blobs
                            .put(
                                serde_json::to_string_pretty(&doc)
                                    .unwrap_or_default()
                                    .as_bytes(),
                            )
                            .await
                            .map_err(|e| ToolError::Io(e.to_string()))?;
                        let mut out = ToolOutput::default();
                        out.outputs.insert("prp".into(), doc);
                        out.outputs
                            .insert("confidence".into(), json!(src.prp.confidence));
                        out.outputs.insert("rounds".into(), json!(round));
                        out.outputs.insert("model".into(), json!(answer.model));
                        out.artifacts.push(("prp.json".into(), blob));
                        return Ok(out);
                    }
                    Err(found) => {
                        tracing::info!(
                            round,
                            problems = found.len(),
                            "prp:generate: the PRP has problems; asking for a repair"
                        );
                        ask.messages.push(Message::assistant(answer.text));
                        ask.messages.push(Message::user(format!(
                            "The PRP has these problems:\n- {}\nAnswer with the whole corrected PRP as one JSON object.",
                            found.join("\n- ")
                        )));
                        last = found;
                    }
                }
            }
            Err(ToolError::failed(format!(
                "the model's PRP still had problems after {MAX_ROUNDS} answers: {}",
                last.join("; ")
            )))
        })
    }
}
