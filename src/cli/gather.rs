//! `nofx gather FILE [--path DIR] [--answers FILE] [--run]`: gathers requirements with a
//! questionnaire. The questionnaire becomes a gathering run (its phases ask questions or
//! run tools such as `repo:analyze` on DIR); its questions are answered from `--answers`,
//! else in the terminal (one prompt a question, by type), else over the API or `nofx
//! answer` from anywhere. The run's last task makes the plan; it is printed (JSON) on
//! stdout, and with `--run` it runs as a child run of the gathering run.

use super::run::StartArgs;
use super::{runtime, CliResult, Failure, Global};
use crate::domain::plan::{Format, PlanSource};
use crate::domain::question::{Answer, Question, QuestionType};
use crate::domain::questionnaire::{QuestionnaireSource, PLAN_TASK};
use crate::runtime::{default_answerer, AskedQuestion};
use crate::{EventType, RunId, RunStatus, Runtime, SubmitOptions, WaitId};
use clap::Args;
use futures::StreamExt;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct GatherArgs {
    /// The questionnaire (YAML or JSON).
    file: PathBuf,
    /// The directory the gathering run works in (what `repo:analyze` reads; with --run, where
    /// the plan runs). Default: a new workspace of its own.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Answers by question id (YAML or JSON); `{idk: true}` for "I don't know". Without a
    /// terminal, a question it leaves out takes its default when it has one.
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Run the plan it makes, as a child run of the gathering run.
    #[arg(long)]
    run: bool,
    #[command(flatten)]
    start: StartArgs,
}

/// Answers by question id, from a file (a value, or `{idk: true}`).
fn read_answers(path: &PathBuf) -> Result<Map<String, Value>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let v: Value = match Format::for_path(&path.display().to_string()) {
        Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::from_str(&text).map_err(|e| e.to_string()),
    }
    .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    match v {
        Value::Object(map) => Ok(map),
        _ => Err(Failure::Input(format!(
            "{}: answers are a mapping of question id to answer",
            path.display()
        ))),
    }
}

/// One prompt line for a question, by type.
fn prompt_text(q: &Question) -> String {
    let mut s = format!("? {}", q.text);
    match q.kind {
        QuestionType::Select | QuestionType::Multiselect => {
            s.push('\n');
            for (i, o) in q.options.iter().enumerate() {
                let mark = if q.kind == QuestionType::Multiselect {
                    "[ ] "
                } else {
                    ""
                };
                s.push_str(&format!("  {mark}{}) {o}\n", i + 1));
            }
            s.push_str(if q.kind == QuestionType::Select {
                "  pick a number"
            } else {
                "  pick numbers, comma-separated"
            });
            if q.allow_other {
                s.push_str(" or type your own");
            }
        }
        QuestionType::Boolean => s.push_str(" (y/n)"),
        QuestionType::Number => s.push_str(" (a number)"),
        QuestionType::Text => {}
    }
    match (&q.default, &q.smart_default) {
        (Some(d), _) => s.push_str(&format!(" [default: {}]", shown(d))),
        (None, Some(d)) if !d.as_str().is_some_and(|t| t.contains("${")) => {
            s.push_str(&format!(" [suggested: {}]", shown(d)))
        }
        _ => {}
    }
    if !q.required {
        s.push_str(" (optional)");
    }
    s.push_str(" (? if you don't know): ");
    s
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a line typed at a prompt answers: `?` is "I don't know"; an empty line takes the
/// default (or leaves an optional question empty); numbers pick options.
fn typed(q: &Question, line: &str) -> Result<Answer, String> {
    let line = line.trim();
    if line == "?" {
        return Ok(Answer::Idk);
    }
    if line.is_empty() {
        if q.default.is_some() || q.smart_default.is_some() {
            return Ok(Answer::Idk);
        }
        if !q.required {
            return Ok(Answer::Value(Value::String(String::new())));
        }
        return Err("an answer is required (type ? if you don't know)".into());
    }
    let pick = |s: &str| -> String {
        match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 && n <= q.options.len() => q.options[n - 1].clone(),
            _ => s.trim().to_string(),
        }
    };
    let value = match q.kind {
        QuestionType::Select => Value::String(pick(line)),
        QuestionType::Multiselect => Value::Array(
            line.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(pick(s)))
                .collect(),
        ),
        _ => q.from_text(line),
    };
    q.accept(&value)
        .map(Answer::Value)
        .map_err(|e| e.to_string())
}

/// Asks `q` on the terminal until an acceptable answer (None at the end of input).
fn ask_terminal(q: &Question) -> Option<Answer> {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    loop {
        let _ = write!(err, "{}", prompt_text(q));
        let _ = err.flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match typed(q, &line) {
            Ok(a) => return Some(a),
            Err(why) => {
                let _ = writeln!(err, "  {why}");
            }
        }
    }
}

pub async fn gather(g: &Global, a: GatherArgs) -> CliResult {
    let name = a.file.display().to_string();
    let text =
        std::fs::read_to_string(&a.file).map_err(|e| Failure::Input(format!("{name}: {e}")))?;
    let src = QuestionnaireSource::parse(&text, Format::for_path(&name), Some(&name))
        .map_err(|e| Failure::Input(e.to_string()))?;
    let mut answers = match &a.answers {
        Some(p) => read_answers(p)?,
        None => Map::new(),
    };
    let known: HashSet<&str> = src
        .questionnaire
        .phases
        .iter()
        .flat_map(|p| p.questions.iter().flatten().map(|q| q.id.as_str()))
        .collect();
    if let Some(unknown) = answers.keys().find(|k| !known.contains(k.as_str())) {
        return Err(Failure::Input(format!(
            "--answers: the questionnaire asks no question `{unknown}`"
        )));
    }
    // With --answers and nobody at a terminal, what the file leaves out takes its default
    // when it has one (or stays empty when optional).
    if a.answers.is_some() && !std::io::stdin().is_terminal() {
        for q in src
            .questionnaire
            .phases
            .iter()
            .flat_map(|p| p.questions.iter().flatten())
        {
            let defaultable = !q.required || q.default.is_some() || q.smart_default.is_some();
            if defaultable && !answers.contains_key(&q.id) {
                answers.insert(q.id.clone(), serde_json::json!({"idk": true}));
            }
        }
    }
    if let Some(p) = &a.path {
        if !p.is_dir() {
            return Err(Failure::Input(format!(
                "--path {}: not a directory",
                p.display()
            )));
        }
    }
    let plan = src
        .questionnaire
        .compile_with(&answers, Some(&default_answerer()));
    let rt = runtime(g).await?;
    // A plan made from a template finds the shipped ones.
    if let Err(e) = super::load_templates(g, &rt).await {
        rt.shutdown().await;
        return Err(e);
    }
    let result = gather_with(&rt, &a, plan).await;
    match result {
        Ok(Some((gathering, made))) if a.run => {
            let opts = SubmitOptions {
                parent: Some(gathering),
                workspace: a.path.clone(),
                ..a.start.options()?
            };
            let submitted = match &made {
                Made::Template {
                    id,
                    inputs,
                    project,
                } => rt.instantiate(project, id, inputs.clone(), opts).await,
                Made::Plan(p) => rt.submit_opts(p, Map::new(), opts).await,
            };
            let headline = format!("the plan gathered by run {gathering}");
            super::run::drive(&rt, submitted, &a.start, &headline).await
        }
        Ok(_) => {
            rt.shutdown().await;
            Ok(())
        }
        Err(e) => {
            rt.shutdown().await;
            Err(e)
        }
    }
}

/// The plan a gathering run made.
enum Made {
    Template {
        id: String,
        inputs: Map<String, Value>,
        project: String,
    },
    Plan(PlanSource),
}

/// Runs the gathering to its end, answering what it can; the gathering run and the plan it
/// made (None when it did not succeed).
async fn gather_with(
    rt: &Runtime,
    a: &GatherArgs,
    plan: crate::domain::plan::Plan,
) -> Result<Option<(RunId, Made)>, Failure> {
    let src = PlanSource::from_plan(plan);
    let opts = SubmitOptions {
        workspace: a.path.clone(),
        ..a.start.options()?
    };
    let run = rt.submit_opts(&src, Map::new(), opts).await?;
    let id = run.id();
    eprintln!(
        "gathering requirements: run {id} ({} phase(s)); answers.json and plan.json become its artifacts",
        src.plan.tasks.len() - 1
    );
    let terminal = std::io::stdin().is_terminal();
    let by = default_answerer();
    let mut handled: HashSet<WaitId> = HashSet::new();
    let mut told = false;
    let mut events = Box::pin(run.subscribe());
    while let Some(ev) = events.next().await {
        let ev = ev?;
        if let Ok(
            crate::domain::EventData::QuestionAnswered(d)
            | crate::domain::EventData::QuestionDefaulted(d),
        ) = ev.payload()
        {
            let how = match (d.answer.source, d.answer.timed_out) {
                (Some(crate::domain::question::AnswerSource::User), _) => String::new(),
                (Some(s), false) => format!(" ({})", s.as_str()),
                (Some(s), true) => format!(" ({}, at the deadline)", s.as_str()),
                (None, _) => match &d.reason {
                    Some(r) => format!(" ({r})"),
                    None => " (no answer)".into(),
                },
            };
            eprintln!("  {} = {}{how}", d.question, shown(&d.answer.value));
            continue;
        }
        if ev.kind != EventType::QuestionAsked && ev.kind != EventType::RunWaiting {
            if ev.kind.ends_run() {
                break;
            }
            continue;
        }
        let pending: Vec<AskedQuestion> = rt
            .questions(id, Some(crate::domain::question::QuestionStatus::Pending))
            .await?;
        for q in pending {
            if !handled.insert(q.wait_id.clone()) {
                continue;
            }
            if let Some(why) = &q.reason {
                eprintln!("  {}: {why}", q.question.id);
            }
            if terminal {
                let spec = q.question.clone();
                let typed = tokio::task::spawn_blocking(move || ask_terminal(&spec))
                    .await
                    .map_err(|e| Failure::Error(e.to_string()))?;
                if let Some(ans) = typed {
                    match rt.answer(id, q.wait_id.as_str(), ans, &by).await {
                        Ok(_) => continue,
                        Err(e) => eprintln!("  {e}"),
                    }
                }
            }
            eprintln!(
                "  waiting for {}: {} ({}): nofx answer {id} {} VALUE|--idk, or POST /runs/{id}/questions/{}/answer",
                q.question.id,
                q.question.text,
                q.question.kind.as_str(),
                q.question.id,
                q.question.id
            );
            if !told {
                told = true;
                eprintln!("  (answers given from another process reach this run; it goes on once every question is answered)");
            }
        }
    }
    drop(events);
    let outcome = run.wait().await?;
    if outcome.status != RunStatus::Succeeded {
        eprintln!(
            "gathering run {id} {}: {}",
            outcome.status,
            outcome.reason.clone().unwrap_or_default()
        );
        return Err(Failure::RunFailed);
    }
    let Some(made) = outcome
        .tasks
        .iter()
        .find(|t| t.id.as_str() == PLAN_TASK)
        .and_then(|t| t.outputs.clone())
    else {
        return Err(Failure::Error(format!("gathering run {id} made no plan")));
    };
    let answered = made["answers"].as_object().map_or(0, Map::len);
    println!(
        "{}",
        serde_json::to_string_pretty(&made["plan"]).map_err(|e| Failure::Error(e.to_string()))?
    );
    eprintln!(
        "gathered {answered} answer(s); the plan ({}) is printed above and stored as artifact plan.json of run {id} (answers.json beside it)",
        made["source"].as_str().unwrap_or("?")
    );
    let result = match made["source"].as_str() {
        Some("template") => Made::Template {
            id: made["template"].as_str().unwrap_or_default().to_string(),
            inputs: made["inputs"].as_object().cloned().unwrap_or_default(),
            project: rt.store().run(id).await?.project,
        },
        _ => Made::Plan(crate::tools::gather::plan_of(&made).map_err(Failure::Error)?),
    };
    Ok(Some((id, result)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(yaml: &str) -> Question {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn typed_lines_become_answers_by_type() {
        let sel =
            q("{ id: db, text: t, type: select, options: [postgres, sqlite], default: sqlite }");
        assert_eq!(typed(&sel, "2\n"), Ok(Answer::Value(json!("sqlite"))));
        assert_eq!(
            typed(&sel, "postgres"),
            Ok(Answer::Value(json!("postgres")))
        );
        assert_eq!(typed(&sel, ""), Ok(Answer::Idk), "the default");
        assert!(typed(&sel, "9").unwrap_err().contains("option"));
        let multi = q("{ id: m, text: t, type: multiselect, options: [a, b, c] }");
        assert_eq!(typed(&multi, "1, 3"), Ok(Answer::Value(json!(["a", "c"]))));
        let yes = q("{ id: y, text: t, type: boolean }");
        assert_eq!(typed(&yes, "y"), Ok(Answer::Value(json!(true))));
        assert!(typed(&yes, "").unwrap_err().contains("required"));
        assert_eq!(typed(&yes, "?"), Ok(Answer::Idk));
        let n = q("{ id: n, text: t, type: number, validate: { max: 3 } }");
        assert!(typed(&n, "4").unwrap_err().contains("max"));
        assert!(
            prompt_text(&sel).contains("2) sqlite")
                && prompt_text(&sel).contains("[default: sqlite]")
        );
        assert!(prompt_text(&multi).contains("[ ] 3) c"));
    }
}
