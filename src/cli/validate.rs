//! Plans from files and flags: reading a plan (`-` is stdin), typing `--input` values, and
//! `nofx validate`, which checks a plan as `nofx run` would.

use super::{builder, load_agents, CliResult, Failure, Global};
use crate::config;
use crate::domain::plan::{Format, PlanSource};
use crate::tools::CommandPolicy;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ValidateArgs {
    /// The plan file.
    file: PathBuf,
    /// Plan inputs, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    inputs: Vec<String>,
}

/// Checks a plan as `nofx run` would before running it, without opening the store: the
/// configuration (agents, policies, models) and the plan, every problem at once.
pub fn check_plan(
    g: &Global,
    src: &PlanSource,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<crate::domain::plan::ValidatedPlan, Failure> {
    match builder(g, CommandPolicy::allow_all()) {
        Ok(b) => Ok(b.check(src, inputs)?),
        Err(Failure::Input(config)) => {
            // The configuration is broken; the plan's own problems are listed too, checked
            // against the agents that did load (else the built-in ones).
            let agents = load_agents(g).unwrap_or_else(|_| config::builtin_agents());
            let plan = crate::domain::plan::validate(
                src,
                inputs,
                &crate::tools::ToolRegistry::builtin(),
                &agents,
            )
            .err()
            .map(|e| format!("\n{e}"))
            .unwrap_or_default();
            Err(Failure::Input(format!("{config}{plan}")))
        }
        Err(other) => Err(other),
    }
}

/// Reads a plan file; `-` reads the plan from standard input (YAML, or JSON).
pub fn read_plan(path: &Path) -> Result<PlanSource, Failure> {
    let (text, name) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::Input(format!("cannot read the plan from stdin: {e}")))?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::Input(format!("cannot read plan file {}: {e}", path.display()))
        })?;
        (text, path.display().to_string())
    };
    PlanSource::parse(&text, Format::for_path(&name), Some(&name))
        .map_err(|e| Failure::Input(e.to_string()))
}

/// Splits `NAME=VALUE` flags and types them by the plan's declared inputs.
pub fn plan_inputs(
    src: &PlanSource,
    raw: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for r in raw {
        let (k, v) = r
            .split_once('=')
            .ok_or_else(|| Failure::Input(format!("--input `{r}` must be NAME=VALUE")))?;
        let k = k.trim().to_string();
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(Failure::Input(format!(
                "--input `{k}` is given more than once; give each input once"
            )));
        }
        pairs.push((k, v.to_string()));
    }
    crate::domain::plan::inputs_from_text(&src.plan, &pairs)
        .map_err(|e| Failure::Input(e.to_string()))
}

pub fn validate(g: &Global, a: ValidateArgs) -> CliResult {
    let src = read_plan(&a.file)?;
    let inputs = plan_inputs(&src, &a.inputs)?;
    let v = check_plan(g, &src, &inputs)?;
    let n = v.graph.len();
    let split = v
        .plan
        .tasks
        .iter()
        .filter(|t| t.decompose.is_some())
        .count();
    let more = if split == 0 {
        String::new()
    } else {
        format!(", {split} of them decomposed at run time")
    };
    println!(
        "{}: plan `{}` is valid ({n} task{}{more})",
        a.file.display(),
        v.plan.name,
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
