//! Questionnaires, pure: what requirements gathering asks, in phases, and how the answers
//! become a plan. A phase asks questions (`{id, questions, generate?}`) or runs a tool
//! (`{id, tool, inputs}`, such as `repo:analyze`); phases are dependency layers. `plan` maps
//! the answers to a template's inputs (`{template, inputs}`) or to a goal for the planner
//! (`{goal}`), with `${answers.ID}` references. A questionnaire compiles to the plan of a
//! gathering run: one task a phase (`ask` for questions, the tool otherwise), each after the
//! one before, and a last task `plan` (`gather:plan`) that makes the plan from the answers.

use super::plan::{Format, Plan, TaskSpec};
use super::question::{DependsOn, Question, MAX_QUESTIONS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The id of a gathering run's last task, which makes the plan.
pub const PLAN_TASK: &str = "plan";
/// The tool of that task.
pub const PLAN_TOOL: &str = "gather:plan";
/// Most questions a phase's model may add.
pub const MAX_GENERATED: u32 = 10;
/// Most phases.
const MAX_PHASES: usize = 50;

/// A questionnaire as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Questionnaire {
    /// Its name.
    pub name: String,
    /// What it gathers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// How the answers become a plan.
    pub plan: Target,
}

/// A phase: questions asked together, or a tool run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Its id (the gathering run's task id).
    pub id: String,
    /// The questions it asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<Vec<Question>>,
    /// Up to this many more questions the model proposes from the answers so far and the
    /// analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<u32>,
    /// The tool it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool's inputs (`${answers.ID}` and `${tasks.PHASE.outputs…}` references allowed).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
}

/// How the answers become a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A template's id, instantiated with `inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's inputs.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// A goal the planner decomposes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
}

/// A problem of a questionnaire: where (line, phase, question) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The question (or phase) it concerns.
    pub at: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Every problem of a questionnaire, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.origin, .problems))]
pub struct QuestionnaireErrors {
    /// The file, for messages.
    pub origin: Option<String>,
    /// The problems.
    pub problems: Vec<Problem>,
}

fn render(origin: &Option<String>, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let mut s = origin.clone().unwrap_or_default();
            if let Some(l) = p.line {
                if s.is_empty() {
                    s = format!("line {l}");
                } else {
                    s = format!("{s}:{l}");
                }
            }
            if !s.is_empty() {
                s.push_str(": ");
            }
            if let Some(at) = &p.at {
                s.push_str(&format!("{at}: "));
            }
            s.push_str(&p.message);
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A questionnaire read from text, with the lines of its phases and questions.
#[derive(Debug, Clone)]
pub struct QuestionnaireSource {
    /// The questionnaire.
    pub questionnaire: Questionnaire,
    /// Where it came from.
    pub origin: Option<String>,
    lines: HashMap<(usize, Option<usize>), usize>,
}

impl QuestionnaireSource {
    /// Reads and checks a questionnaire.
    ///
    /// # Errors
    /// Syntax, and every problem the questionnaire shows, each naming its line and
    /// question.
    pub fn parse(
        text: &str,
        format: Format,
        origin: Option<&str>,
    ) -> Result<Self, QuestionnaireErrors> {
        let fail = |line: Option<usize>, message: String| QuestionnaireErrors {
            origin: origin.map(str::to_string),
            problems: vec![Problem {
                line,
                at: None,
                message,
            }],
        };
        let deep = match format {
            Format::Json => crate::domain::nesting::check_json(text),
            Format::Yaml => crate::domain::nesting::check_yaml(text),
        };
        deep.map_err(|e| fail(None, e.to_string()))?;
        let q: Questionnaire = match format {
            Format::Json => serde_json::from_str(text)
                .map_err(|e| fail(Some(e.line()), without_position(&e.to_string())))?,
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| {
                fail(
                    e.location().map(|l| l.line()),
                    without_position(&e.to_string()),
                )
            })?,
        };
        let src = Self {
            questionnaire: q,
            origin: origin.map(str::to_string),
            lines: item_lines(text),
        };
        let problems = src.questionnaire.problems();
        if problems.is_empty() {
            return Ok(src);
        }
        Err(QuestionnaireErrors {
            origin: src.origin.clone(),
            problems: problems
                .into_iter()
                .map(|(phase, question, at, message)| Problem {
                    line: src
                        .lines
                        .get(&(phase, question))
                        .or_else(|| src.lines.get(&(phase, None)))
                        .copied(),
                    at,
                    message,
                })
                .collect(),
        })
    }
}

fn without_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The line of each phase (`(phase, None)`) and question (`(phase, Some(question))`).
fn item_lines(text: &str) -> HashMap<(usize, Option<usize>), usize> {
    use yaml_rust2::parser::{Event, Parser};
    #[derive(Debug)]
    enum Frame {
        Map {
            expect_key: bool,
            key: Option<String>,
        },
        Seq {
            next: usize,
        },
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let key_is = |f: &Frame, k: &str| matches!(f, Frame::Map { key: Some(x), .. } if x == k);
    while let Ok((event, mark)) = parser.next_token() {
        let line = mark.line();
        let starts_item = |stack: &mut Vec<Frame>| -> Option<(usize, Option<usize>)> {
            // phases[i] is at depth 2; phases[i].questions[j] at depth 4.
            let n = stack.len();
            let idx = |f: &mut Frame| match f {
                Frame::Seq { next } => {
                    *next += 1;
                    Some(*next - 1)
                }
                Frame::Map { .. } => None,
            };
            if n == 2 && key_is(&stack[0], "phases") {
                return idx(&mut stack[1]).map(|i| (i, None));
            }
            if n == 4 && key_is(&stack[0], "phases") && key_is(&stack[2], "questions") {
                let i = match &stack[1] {
                    Frame::Seq { next } => next.checked_sub(1)?,
                    Frame::Map { .. } => return None,
                };
                return idx(&mut stack[3]).map(|j| (i, Some(j)));
            }
            None
        };
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(k) = starts_item(&mut stack) {
                    out.insert(k, line);
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        expect_key: true,
                        key: None,
                    }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            Event::Scalar(value, ..) => {
                if let Some(k) = starts_item(&mut stack) {
                    out.insert(k, line);
                }
                match stack.last_mut() {
                    Some(Frame::Map { expect_key, key }) if *expect_key => {
                        *key = Some(value);
                        *expect_key = false;
                    }
                    Some(Frame::Map { expect_key, .. }) => *expect_key = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

/// Where a problem is: phase, question (by index), and what to name it.
type Found = (usize, Option<usize>, Option<String>, String);

/// `${answers.ID…}` references in a value: (id, whole reference text).
fn answer_refs(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(at) = rest.find("${answers.") {
                let tail = &rest[at..];
                let Some(end) = tail.find('}') else { break };
                let inner = &tail["${answers.".len()..end];
                let id = inner.split('.').next().unwrap_or_default().to_string();
                out.push((id, tail[..=end].to_string()));
                rest = &tail[end + 1..];
            }
        }
        Value::Array(items) => items.iter().for_each(|i| answer_refs(i, out)),
        Value::Object(m) => m.values().for_each(|i| answer_refs(i, out)),
        _ => {}
    }
}

impl Questionnaire {
    /// Where each question is asked: id → (phase index, question index).
    fn places(&self) -> HashMap<&str, (usize, usize)> {
        let mut out = HashMap::new();
        for (p, phase) in self.phases.iter().enumerate() {
            for (q, question) in phase.questions.iter().flatten().enumerate() {
                out.entry(question.id.as_str()).or_insert((p, q));
            }
        }
        out
    }

    /// Every problem: phases (ids, one of questions or tool), questions (their specs;
    /// duplicate ids; `depends_on` and `smart_default` naming unknown, later or the same
    /// questions), `${answers…}` in tool inputs and the plan naming unknown or later
    /// questions, and the plan's target.
    fn problems(&self) -> Vec<Found> {
        let mut out: Vec<Found> = Vec::new();
        let top = |m: String| (usize::MAX, None, None, m);
        if self.name.trim().is_empty() {
            out.push(top("`name` must not be empty".into()));
        }
        if self.phases.is_empty() {
            out.push(top("`phases` lists no phase".into()));
        }
        if self.phases.len() > MAX_PHASES {
            out.push(top(format!("at most {MAX_PHASES} phases are allowed")));
        }
        let places = self.places();
        let mut phase_ids: HashMap<&str, usize> = HashMap::new();
        let mut question_ids: HashMap<&str, usize> = HashMap::new();
        for (p, phase) in self.phases.iter().enumerate() {
            let at = Some(format!("phase `{}`", phase.id));
            let mut say = |m: String| out.push((p, None, at.clone(), m));
            if let Err(why) = crate::domain::TaskKey::parse(&phase.id) {
                say(why.replace("task id", "phase id"));
            }
            if phase.id == PLAN_TASK {
                say(format!("`{PLAN_TASK}` is the id of the task that makes the plan; name the phase otherwise"));
            }
            if phase_ids.insert(&phase.id, p).is_some() {
                say(format!("phase id `{}` is used twice", phase.id));
            }
            match (&phase.questions, &phase.tool) {
                (Some(_), Some(_)) => say("a phase has `questions` or a `tool`, not both".into()),
                (None, None) => say("a phase needs `questions` or a `tool`".into()),
                (None, Some(_)) if phase.generate.is_some() => {
                    say("`generate` is for a phase of questions".into())
                }
                (Some(qs), None) if !phase.inputs.is_empty() => {
                    let _ = qs;
                    say("`inputs` are for a phase that runs a tool".into())
                }
                _ => {}
            }
            if let Some(n) = phase.generate {
                if n == 0 || n > MAX_GENERATED {
                    say(format!("`generate` must be 1 to {MAX_GENERATED}, got {n}"));
                }
            }
            let qs = phase.questions.as_deref().unwrap_or_default();
            if qs.len() > MAX_QUESTIONS {
                say(format!(
                    "{} questions; a phase asks at most {MAX_QUESTIONS}",
                    qs.len()
                ));
            }
            let mut refs = Vec::new();
            answer_refs(&Value::Object(phase.inputs.clone()), &mut refs);
            for (id, text) in refs {
                match places.get(id.as_str()) {
                    None => say(format!("`{text}` names no question")),
                    Some(&(qp, _)) if qp >= p => say(format!(
                        "`{text}` names a question of this or a later phase"
                    )),
                    _ => {}
                }
            }
            for (q, question) in qs.iter().enumerate() {
                let at = Some(format!("question `{}`", question.id));
                let mut say = |m: String| out.push((p, Some(q), at.clone(), m));
                for m in question.problems() {
                    say(m);
                }
                if question_ids.insert(&question.id, p).is_some() {
                    say(format!("question id `{}` is used twice", question.id));
                }
                if let Some(Value::String(s)) = &question.smart_default {
                    if !s.contains("${") {
                        say(format!("`smart_default` must be a `${{answers.ID}}` or `${{tasks.PHASE.outputs…}}` reference, got `{s}`"));
                    }
                }
                if question
                    .smart_default
                    .as_ref()
                    .is_some_and(|v| !v.is_string())
                {
                    say("`smart_default` must be a `${answers.ID}` or `${tasks.PHASE.outputs…}` reference".into());
                }
                let mut named: Vec<(&str, &str)> = Vec::new();
                if let Some(DependsOn::Question { question: on, .. }) = &question.depends_on {
                    named.push(("depends_on", on.as_str()));
                }
                let mut smart = Vec::new();
                if let Some(v) = &question.smart_default {
                    answer_refs(v, &mut smart);
                }
                for (id, _) in &smart {
                    named.push(("smart_default", id.as_str()));
                }
                for (key, on) in named {
                    if on == question.id {
                        say(format!("`{key}` names the question itself (a cycle)"));
                        continue;
                    }
                    match places.get(on) {
                        None => say(format!("`{key}` names no question `{on}`")),
                        Some(&(op, oq)) if op > p || (op == p && oq > q) => say(format!(
                            "`{key}` names question `{on}`, which is asked later"
                        )),
                        _ => {}
                    }
                }
                for (key, v) in [
                    ("smart_default", question.smart_default.as_ref()),
                    (
                        "depends_on.output",
                        match &question.depends_on {
                            Some(DependsOn::Output { output, .. }) => Some(output),
                            _ => None,
                        },
                    ),
                ] {
                    let Some(Value::String(s)) = v else { continue };
                    if let Ok(refs) = crate::domain::reference::references(s) {
                        for r in refs {
                            if let crate::domain::reference::Reference::TaskOutput {
                                task, ..
                            } = r
                            {
                                match phase_ids.get(task.as_str()) {
                                    Some(&tp) if tp < p => {}
                                    _ => say(format!(
                                        "`{key}` names phase `{task}`, which is not an earlier phase"
                                    )),
                                }
                            }
                        }
                    }
                }
            }
        }
        let target = usize::MAX;
        let at = Some("plan".to_string());
        match (&self.plan.template, &self.plan.goal) {
            (Some(_), Some(_)) => out.push((
                target,
                None,
                at.clone(),
                "give `template` (with `inputs`) or `goal`, not both".into(),
            )),
            (None, None) => out.push((
                target,
                None,
                at.clone(),
                "give `template` (with `inputs`) or `goal`".into(),
            )),
            (None, Some(g)) if g.trim().is_empty() => {
                out.push((target, None, at.clone(), "`goal` must not be empty".into()))
            }
            (None, Some(_)) if !self.plan.inputs.is_empty() => out.push((
                target,
                None,
                at.clone(),
                "`inputs` go with `template`".into(),
            )),
            _ => {}
        }
        let mut refs = Vec::new();
        answer_refs(&Value::Object(self.plan.inputs.clone()), &mut refs);
        if let Some(g) = &self.plan.goal {
            answer_refs(&Value::String(g.clone()), &mut refs);
        }
        for (id, text) in refs {
            if !places.contains_key(id.as_str()) {
                out.push((
                    target,
                    None,
                    at.clone(),
                    format!("`{text}` names no question"),
                ));
            }
        }
        out
    }

    /// The plan of a gathering run: a task a phase, each after the one before, and the
    /// last task, `plan`, which makes the plan from the answers.
    pub fn compile(&self) -> Plan {
        self.compile_with(&Map::new(), None)
    }

    /// [`Questionnaire::compile`], with answers given in advance (by question id: a value,
    /// or `{idk: true}`) that settle their questions as soon as they are asked, given by
    /// `by`.
    pub fn compile_with(&self, advance: &Map<String, Value>, by: Option<&str>) -> Plan {
        let places = self.places();
        let phase_of = |id: &str| places.get(id).map(|&(p, _)| self.phases[p].id.clone());
        // `${answers.ID…}` of another phase → `${tasks.PHASE.outputs.ID…}`.
        let rewrite = |v: &Value, here: Option<usize>| -> Value {
            map_strings(v, &|s: &str| {
                let mut out = String::with_capacity(s.len());
                let mut rest = s;
                while let Some(at) = rest.find("${answers.") {
                    out.push_str(&rest[..at]);
                    let tail = &rest[at..];
                    let Some(end) = tail.find('}') else {
                        break;
                    };
                    let inner = &tail["${answers.".len()..end];
                    let id = inner.split('.').next().unwrap_or_default();
                    let same = here.is_some_and(|p| places.get(id).is_some_and(|&(qp, _)| qp == p));
                    match phase_of(id) {
                        Some(phase) if !same => {
                            out.push_str(&format!("${{tasks.{phase}.outputs.{inner}}}"))
                        }
                        _ => out.push_str(&tail[..=end]),
                    }
                    rest = &tail[end + 1..];
                }
                out.push_str(rest);
                out
            })
        };
        let mut plan = Plan::new(self.name.clone());
        let mut before: Option<&str> = None;
        let mut answers = Vec::new();
        let mut analysis = Map::new();
        for (p, phase) in self.phases.iter().enumerate() {
            let mut task = match (&phase.questions, &phase.tool) {
                (Some(qs), _) => {
                    let list: Vec<Value> = qs
                        .iter()
                        .map(|q| {
                            let mut q = q.clone();
                            if let Some(DependsOn::Question { question, value }) = &q.depends_on {
                                if places
                                    .get(question.as_str())
                                    .is_some_and(|&(qp, _)| qp != p)
                                {
                                    q.depends_on = Some(DependsOn::Output {
                                        output: Value::String(format!(
                                            "${{tasks.{}.outputs.{question}}}",
                                            phase_of(question).unwrap_or_default()
                                        )),
                                        value: value.clone(),
                                    });
                                }
                            }
                            let v = serde_json::to_value(&q).unwrap_or(Value::Null);
                            rewrite(&v, Some(p))
                        })
                        .collect();
                    answers.push(Value::String(format!("${{tasks.{}.outputs}}", phase.id)));
                    let mut t = TaskSpec::new(phase.id.clone(), "ask")
                        .input("questions", Value::Array(list));
                    // Answers are data: a `${…}` in one is not a reference.
                    let given: Map<String, Value> = advance
                        .iter()
                        .filter(|(k, _)| places.get(k.as_str()).is_some_and(|&(qp, _)| qp == p))
                        .map(|(k, v)| (k.clone(), crate::domain::reference::escaped(v.clone())))
                        .collect();
                    if !given.is_empty() {
                        t = t.input("answers", Value::Object(given));
                        if let Some(by) = by {
                            t = t.input("answered_by", by);
                        }
                    }
                    if let Some(n) = phase.generate {
                        t = t.input("generate", n);
                        let mut context = Map::new();
                        for earlier in &self.phases[..p] {
                            context.insert(
                                earlier.id.clone(),
                                Value::String(format!("${{tasks.{}.outputs}}", earlier.id)),
                            );
                        }
                        t = t.input("context", Value::Object(context));
                    }
                    t
                }
                (None, Some(tool)) => {
                    analysis.insert(
                        phase.id.clone(),
                        Value::String(format!("${{tasks.{}.outputs}}", phase.id)),
                    );
                    let mut t = TaskSpec::new(phase.id.clone(), tool.clone());
                    for (k, v) in &phase.inputs {
                        t = t.input(k.clone(), rewrite(v, None));
                    }
                    t
                }
                (None, None) => continue,
            };
            if let Some(b) = before {
                task = task.after(b);
            }
            before = Some(&phase.id);
            plan = plan.task(task);
        }
        let mut last = TaskSpec::new(PLAN_TASK, PLAN_TOOL)
            .input("questionnaire", self.name.clone())
            .input("answers", Value::Array(answers))
            .input("analysis", Value::Object(analysis));
        if let Some(t) = &self.plan.template {
            last = last.input("template", t.clone()).input(
                "inputs",
                rewrite(&Value::Object(self.plan.inputs.clone()), None),
            );
        }
        if let Some(g) = &self.plan.goal {
            last = last.input("goal", rewrite(&Value::String(g.clone()), None));
        }
        if let Some(b) = before {
            last = last.after(b);
        }
        plan.task(last)
    }
}

fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| map_strings(i, f)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), map_strings(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = r#"name: change
phases:
  - id: basics
    questions:
      - { id: what, text: What should change?, type: text }
      - { id: kind, text: Kind?, type: select, options: [fix, feature], default: fix }
  - id: scan
    tool: repo:analyze
    inputs: { path: . }
  - id: tech
    questions:
      - { id: tests, text: Test command?, type: text, smart_default: "${tasks.scan.outputs.test_commands.0}" }
      - { id: again, text: Same kind?, type: boolean, depends_on: { question: kind, value: fix } }
      - { id: slug, text: Slug?, type: text, smart_default: "${answers.what}" }
plan:
  goal: "Make this ${answers.kind}: ${answers.what}. Test with ${answers.tests}."
"#;

    #[test]
    fn a_questionnaire_compiles_to_layers_and_a_plan_task() {
        let src = QuestionnaireSource::parse(GOOD, Format::Yaml, Some("q.yaml")).unwrap();
        let plan = src.questionnaire.compile();
        let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["basics", "scan", "tech", "plan"]);
        assert_eq!(plan.tasks[1].depends_on, ["basics"]);
        assert_eq!(plan.tasks[3].depends_on, ["tech"]);
        let tech = &plan.tasks[2].inputs["questions"];
        assert_eq!(
            tech[1]["depends_on"],
            json!({"output": "${tasks.basics.outputs.kind}", "value": "fix"})
        );
        assert_eq!(tech[2]["smart_default"], "${tasks.basics.outputs.what}");
        assert_eq!(
            plan.tasks[3].inputs["goal"],
            "Make this ${tasks.basics.outputs.kind}: ${tasks.basics.outputs.what}. Test with ${tasks.tech.outputs.tests}."
        );
        assert_eq!(
            plan.tasks[3].inputs["answers"],
            json!(["${tasks.basics.outputs}", "${tasks.tech.outputs}"])
        );
    }

    #[test]
    fn load_errors_name_line_and_question() {
        let bad = r#"name: bad
phases:
  - id: one
    questions:
      - { id: a, text: A?, type: select, options: [x], default: y }
      - { id: a, text: Again?, type: text }
      - { id: b, text: B?, type: text, depends_on: { question: c, value: 1 } }
      - { id: c, text: C?, type: text, smart_default: "${answers.d}", validate: { regex: "(" } }
      - { id: d, text: D?, type: text, depends_on: { question: d, value: 1 } }
      - { id: e, text: E?, type: text, depends_on: { question: nope, value: 1 } }
plan: { goal: "do ${answers.zzz}" }
"#;
        let err = QuestionnaireSource::parse(bad, Format::Yaml, Some("bad.yaml"))
            .unwrap_err()
            .to_string();
        for want in [
            "bad.yaml:5: question `a`: a select question needs at least 2 options, got 1",
            "bad.yaml:5: question `a`: `default` \"y\" is not among the options",
            "bad.yaml:6: question `a`: question id `a` is used twice",
            "bad.yaml:7: question `b`: `depends_on` names question `c`, which is asked later",
            "bad.yaml:8: question `c`: `smart_default` names question `d`, which is asked later",
            "bad.yaml:8: question `c`: validate.regex is not a regular expression",
            "bad.yaml:9: question `d`: `depends_on` names the question itself (a cycle)",
            "bad.yaml:10: question `e`: `depends_on` names no question `nope`",
            "plan: `${answers.zzz}` names no question",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        let syntax = QuestionnaireSource::parse("name: x\nphases: [{ id: a, questions: [{ id: q, text: t, type: colour }] }]\nplan: { goal: g }\n", Format::Yaml, Some("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(syntax.starts_with("s.yaml:2: "), "{syntax}");
    }
}
