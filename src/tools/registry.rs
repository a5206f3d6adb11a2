//! The tool registry: tools by name, with their compiled input schemas.

use super::Tool;
use crate::domain::plan::ToolCatalog;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A registry error.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tool's input schema does not compile.
    #[error("tool `{tool}` has an invalid input schema: {why}")]
    BadSchema {
        /// The tool.
        tool: String,
        /// Why.
        why: String,
    },
}

struct Entry {
    tool: Arc<dyn Tool>,
    schema: jsonschema::Validator,
}

/// Tools by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<Entry>>,
}

impl ToolRegistry {
    /// The built-in tools: `test:echo`, `test:validate`, `test:healthcheck`, `shell`,
    /// `llm:generate`, `codegen`, `agent`, `ask`, `repo:analyze`, `gather:plan`, and the
    /// tools of PRPs: `prp:step`, `prp:check`, `prp:rollback`, `prp:generate`.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        for t in [
            Arc::new(super::Echo) as Arc<dyn Tool>,
            Arc::new(super::Validate),
            Arc::new(super::Healthcheck),
            Arc::new(super::Shell),
            Arc::new(super::LlmGenerate),
            Arc::new(super::Codegen),
            Arc::new(super::AgentTool),
            Arc::new(super::Ask),
            Arc::new(super::RepoAnalyze),
            Arc::new(super::gather::GatherPlan),
            Arc::new(super::prp::PrpStep),
            Arc::new(super::prp::PrpCheck),
            Arc::new(super::prp::PrpRollback),
            Arc::new(super::prp::generate::PrpGenerate),
        ] {
            r.register(t).expect("built-in tool schemas compile");
        }
        r
    }

    /// Adds (or replaces) a tool.
    ///
    /// # Errors
    /// When its input schema does not compile.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let schema = jsonschema::validator_for(&tool.input_schema()).map_err(|e| {
            let at = e.instance_path.to_string();
            RegistryError::BadSchema {
                tool: tool.name().to_string(),
                why: if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at {at}: {e}")
                },
            }
        })?;
        self.tools
            .insert(tool.name().to_string(), Arc::new(Entry { tool, schema }));
        Ok(())
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).map(|e| e.tool.clone())
    }

    /// Schema violations of `inputs` for `tool` (`None` when the tool is unknown).
    pub fn input_errors(&self, tool: &str, inputs: &Value) -> Option<Vec<(String, String)>> {
        let e = self.tools.get(tool)?;
        let mut problems: Vec<(String, String)> = e
            .schema
            .iter_errors(inputs)
            .map(|err| (err.instance_path.to_string(), err.to_string()))
            .collect();
        if problems.is_empty() {
            problems = e.tool.check_inputs(inputs);
        }
        Some(problems)
    }
}

impl ToolCatalog for ToolRegistry {
    fn check_inputs(&self, tool: &str, inputs: &Value) -> Option<Vec<(String, String)>> {
        self.input_errors(tool, inputs)
    }

    fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    fn input_schema(&self, tool: &str) -> Option<Value> {
        self.get(tool).map(|t| t.input_schema())
    }
}
