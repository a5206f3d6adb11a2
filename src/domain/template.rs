//! Plan templates: a named, categorised plan whose inputs (with their defaults) are filled
//! in when a run is made from it. Shipped templates live in `templates/*.yaml`.

use super::plan::Plan;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A template as written in a file or sent to `POST /templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Id: letters, digits, `_` and `-`, at most 64; unique per project.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Category, for filtering.
    #[serde(default = "general")]
    pub category: String,
    /// The plan.
    pub plan: Plan,
    /// Free-form metadata.
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

fn general() -> String {
    "general".into()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// What was written.
    #[serde(flatten)]
    pub spec: TemplateSpec,
    /// Runs made from it.
    pub usage_count: i64,
    /// Shipped with nofx (visible to every project, read-only).
    pub shipped: bool,
    /// Creation time (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub created_at: i64,
    /// Last change (ms; RFC 3339 in documents).
    #[serde(serialize_with = "crate::domain::time::ms")]
    pub updated_at: i64,
}

impl TemplateSpec {
    /// Problems with the id, name and category (the plan is validated by the runtime).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ok_id = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_id {
            out.push(format!(
                "`id` must be 1 to 64 ASCII letters, digits, `_` or `-`, got `{}`",
                self.id
            ));
        }
        if self.name.trim().is_empty() {
            out.push("`name` must not be empty".into());
        }
        if self.category.trim().is_empty() {
            out.push("`category` must not be empty".into());
        }
        if !self.metadata.is_object() {
            out.push("`metadata` must be an object".into());
        }
        out
    }
}

/// A shipped template file: a template whose plan is inline (`plan`) or in a plan file next
/// to it (`plan_file`, relative to the template's directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "general")]
    category: String,
    plan: Option<Plan>,
    plan_file: Option<String>,
    #[serde(default = "empty_object")]
    metadata: Value,
}

impl TemplateFile {
    /// Parses a template file whose plan file paths are relative to `base`.
    ///
    /// # Errors
    /// Bad YAML, both or neither of `plan` and `plan_file`, an unreadable or invalid plan file.
    pub fn parse(text: &str, base: &std::path::Path) -> Result<TemplateSpec, String> {
        let f: TemplateFile = super::nesting::from_yaml(text)?;
        let plan = match (f.plan, f.plan_file) {
            (Some(p), None) => p,
            (None, Some(file)) => {
                let path = base.join(&file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("`plan_file` {}: {e}", path.display()))?;
                let name = path.display().to_string();
                let format = super::plan::Format::for_path(&name);
                let src = super::plan::PlanSource::parse(&text, format, Some(&name))
                    .map_err(|e| e.to_string())?;
                (*src.plan).clone()
            }
            _ => return Err("give either `plan` or `plan_file`".into()),
        };
        Ok(TemplateSpec {
            id: f.id,
            name: f.name,
            description: f.description,
            category: f.category,
            plan,
            metadata: f.metadata,
        })
    }
}
