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
    /// Parses a template file's text.
    ///
    /// # Errors
    /// Bad YAML or fields.
    pub fn parse(text: &str) -> Result<Self, String> {
        super::nesting::from_yaml(text)
    }

    /// The plan file it names (relative to the template's directory), when it names one.
    pub fn plan_file(&self) -> Option<&str> {
        self.plan_file.as_deref()
    }

    /// The template, with the plan read from its `plan_file` when it names one.
    ///
    /// # Errors
    /// Both or neither of `plan` and `plan_file`.
    pub fn into_spec(
        self,
        plan_file: Option<super::plan::PlanSource>,
    ) -> Result<TemplateSpec, String> {
        let plan = match (self.plan, self.plan_file, plan_file) {
            (Some(p), None, _) => p,
            (None, Some(_), Some(src)) => (*src.plan).clone(),
            (None, Some(file), None) => return Err(format!("`plan_file` {file} was not read")),
            _ => return Err("give either `plan` or `plan_file`".into()),
        };
        Ok(TemplateSpec {
            id: self.id,
            name: self.name,
            description: self.description,
            category: self.category,
            plan,
            metadata: self.metadata,
        })
    }
}
