//! `nofx templates ls|show|instantiate`: plan templates (the shipped ones from `templates/`
//! and those created through the API).

use super::run::{finish, follow};
use super::{runtime, CliResult, Failure, Global};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// List templates, most used first.
    Ls {
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// The project whose templates to show (besides the shipped ones).
        #[arg(long, default_value = "default")]
        project: String,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one template (JSON).
    Show {
        /// Its id.
        id: String,
        /// The project that sees it.
        #[arg(long, default_value = "default")]
        project: String,
    },
    /// Make a run from a template and wait for it, like `nofx run`.
    Instantiate {
        /// Its id.
        id: String,
        /// Inputs over the template's defaults, NAME=VALUE (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// The project the run belongs to.
        #[arg(long, default_value = "default")]
        project: String,
        /// Print the final run as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub async fn dispatch(g: &Global, c: TemplatesCommand) -> CliResult {
    let rt = runtime(g).await?;
    let result = match super::load_templates(g, &rt).await {
        Ok(()) => run(&rt, c).await,
        Err(e) => Err(e),
    };
    if !matches!(result, Err(Failure::Interrupted)) {
        rt.shutdown().await;
    }
    result
}

async fn run(rt: &crate::Runtime, c: TemplatesCommand) -> CliResult {
    match c {
        TemplatesCommand::Ls {
            category,
            project,
            json,
        } => {
            let ts = rt.store().templates(&project, category.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    // The document of `GET /templates`.
                    serde_json::to_string_pretty(&serde_json::json!({ "templates": ts }))
                        .map_err(|e| Failure::Error(e.to_string()))?
                );
                return Ok(());
            }
            println!(
                "{:<20} {:<12} {:>6}  {:<8} NAME",
                "ID", "CATEGORY", "USES", "SHIPPED"
            );
            for t in ts {
                println!(
                    "{:<20} {:<12} {:>6}  {:<8} {}",
                    t.spec.id,
                    t.spec.category,
                    t.usage_count,
                    if t.shipped { "yes" } else { "no" },
                    t.spec.name
                );
            }
            Ok(())
        }
        TemplatesCommand::Show { id, project } => {
            let t = rt
                .store()
                .template(&project, &id)
                .await?
                .ok_or_else(|| Failure::Input(format!("no template `{id}`")))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&t).map_err(|e| Failure::Error(e.to_string()))?
            );
            Ok(())
        }
        TemplatesCommand::Instantiate {
            id,
            inputs,
            project,
            json,
        } => {
            let t = rt
                .store()
                .template(&project, &id)
                .await?
                .ok_or_else(|| Failure::Input(format!("no template `{id}`")))?;
            let src = crate::domain::plan::PlanSource {
                plan: std::sync::Arc::new(t.spec.plan.clone()),
                origin: Some(format!("template {id}")),
                task_lines: Vec::new(),
            };
            let values = super::plan_inputs(&src, &inputs)?;
            let handle = rt
                .instantiate(&project, &id, values, crate::SubmitOptions::default())
                .await?;
            eprintln!(
                "run {} started from template `{id}`: {} tasks, correlation id {}",
                handle.id(),
                src.plan.tasks.len(),
                handle.correlation_id()
            );
            let outcome = follow(rt, &handle, src.plan.tasks.len()).await;
            finish(rt, outcome, json).await
        }
    }
}
