//! Templates of a runtime: shipped template files loaded from a directory (with the plan
//! files they name), checked against the runtime's tools and agents, and runs made
//! from a stored template.

use super::{RunHandle, Runtime, RuntimeError, SubmitOptions};
use crate::config::ConfigErrors;
use crate::domain::plan::{self, Format, PlanSource};
use crate::domain::template::{TemplateFile, TemplateSpec};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Runtime {
    /// Validates a template's plan (its required inputs without defaults get placeholder
    /// values of their type) against this runtime's tools and agents.
    ///
    /// # Errors
    /// The template's own problems and every problem of its plan.
    pub fn validate_template(&self, t: &TemplateSpec, origin: &str) -> Result<(), Vec<String>> {
        let mut problems = t.problems();
        let src = PlanSource {
            plan: Arc::new(t.plan.clone()),
            origin: Some(origin.to_string()),
            task_lines: Vec::new(),
        };
        let inputs = plan::placeholder_inputs(&t.plan);
        // The plan's own checks; the command policy and model providers are checked when a
        // run is made from it (another server may allow what this one does not).
        let shared = &self.inner.shared;
        if let Err(e) = plan::validate(&src, &inputs, &shared.tools, &shared.agents) {
            problems.extend(e.0.iter().map(|i| i.to_string()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Loads the shipped templates of `dir` (`*.yaml`, `*.yml`, `*.json`), storing new ones
    /// and updating changed ones; returns how many changed.
    ///
    /// # Errors
    /// Every file that cannot be read, parsed or validated, naming it.
    pub async fn load_templates(&self, dir: &Path) -> Result<usize, RuntimeError> {
        let mut specs: Vec<(String, TemplateSpec)> = Vec::new();
        let mut issues = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| RuntimeError::Io {
                path: dir.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        entries.sort();
        for path in entries {
            let file = path.display().to_string();
            let issue = |message: String| crate::config::ConfigIssue {
                file: file.clone(),
                line: None,
                message,
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    issues.push(issue(format!("cannot read: {e}")));
                    continue;
                }
            };
            let spec = match TemplateFile::parse(&text).and_then(|f| {
                let plan = f.plan_file().map(|p| read_plan_file(dir, p)).transpose()?;
                f.into_spec(plan)
            }) {
                Ok(s) => s,
                Err(e) => {
                    issues.push(issue(e));
                    continue;
                }
            };
            match self.validate_template(&spec, &file) {
                Ok(()) => match specs.iter().find(|(_, s)| s.id == spec.id) {
                    Some((first, _)) => issues.push(issue(format!(
                        "template id `{}` is already used by {first}; ids are unique",
                        spec.id
                    ))),
                    None => specs.push((file.clone(), spec)),
                },
                Err(ps) => issues.extend(ps.into_iter().map(&issue)),
            }
        }
        if !issues.is_empty() {
            return Err(RuntimeError::Config(ConfigErrors(issues)));
        }
        let mut changed = 0;
        for (_, s) in &specs {
            if self.store().upsert_shipped_template(s).await? {
                changed += 1;
            }
        }
        // A shipped template whose file is gone is no longer offered.
        let ids: Vec<String> = specs.iter().map(|(_, s)| s.id.clone()).collect();
        changed += self.store().remove_shipped_templates_except(&ids).await? as usize;
        Ok(changed)
    }

    /// Makes a run from template `id` as `project` sees it, with `inputs` over the
    /// template's defaults; its usage count goes up with the run, in one transaction.
    ///
    /// # Errors
    /// `NoSuchTemplate`; missing or mistyped inputs (as plan errors); as `submit`.
    pub async fn instantiate(
        &self,
        project: &str,
        id: &str,
        inputs: Map<String, Value>,
        mut opts: SubmitOptions,
    ) -> Result<RunHandle, RuntimeError> {
        let t = self
            .store()
            .template(project, id)
            .await?
            .ok_or_else(|| RuntimeError::NoSuchTemplate(id.to_string()))?;
        let owner = if t.shipped {
            crate::store::SHIPPED.to_string()
        } else {
            project.to_string()
        };
        let src = PlanSource {
            plan: Arc::new(t.spec.plan),
            origin: Some(format!("template {id}")),
            task_lines: Vec::new(),
        };
        opts.project = Some(project.to_string());
        opts.template = Some((owner, id.to_string()));
        self.submit_opts(&src, inputs, opts).await
    }
}

/// Reads the plan file `file` a template in `dir` names (relative to `dir`; template files
/// are the operator's configuration, like the agents and the command policy).
fn read_plan_file(dir: &Path, file: &str) -> Result<PlanSource, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("`plan_file` {}: {e}", path.display()))?;
    let name = path.display().to_string();
    PlanSource::parse(&text, Format::for_path(&name), Some(&name)).map_err(|e| e.to_string())
}
