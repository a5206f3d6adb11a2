//! Reading a plan from text (YAML or JSON): syntax errors that name their line, and the line
//! where each task starts, for every later message about a task.

use super::Plan;

/// A plan read from text, with the line of each task for messages.
#[derive(Debug, Clone)]
pub struct PlanSource {
    /// The plan (shared: a validated plan and its stored run point at the same one).
    pub plan: std::sync::Arc<Plan>,
    /// Where it came from (a file name), for messages.
    pub origin: Option<String>,
    /// The 1-based line where each task starts, by plan order (when known).
    pub task_lines: Vec<Option<usize>>,
}

/// The text is not a plan.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}{message}")]
pub struct PlanSyntaxError {
    origin: String,
    /// What is wrong, with the line when known.
    pub message: String,
}

/// Format of a plan text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (JSON is valid YAML too, but error messages are better with `Json`).
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file name suggests: JSON for `.json`, else YAML.
    pub fn for_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".json") {
            Self::Json
        } else {
            Self::Yaml
        }
    }
}

impl PlanSource {
    /// Parses a plan from text.
    ///
    /// # Errors
    /// When the text is not valid YAML/JSON or does not match the plan schema; the message
    /// names the line.
    ///
    /// ```
    /// use nofx::plan::{Format, PlanSource};
    /// let src = PlanSource::parse("name: x\ntasks:\n  - { id: a, tool: test:echo }\n", Format::Yaml, None).unwrap();
    /// assert_eq!(src.task_lines, vec![Some(3)]);
    /// ```
    pub fn parse(
        text: &str,
        format: Format,
        origin: Option<&str>,
    ) -> Result<Self, PlanSyntaxError> {
        let prefix = origin.map(|o| format!("{o}: ")).unwrap_or_default();
        let deep = match format {
            Format::Json => crate::domain::nesting::check_json(text),
            Format::Yaml => crate::domain::nesting::check_yaml(text),
        };
        deep.map_err(|e| PlanSyntaxError {
            origin: prefix.clone(),
            message: e.to_string(),
        })?;
        let plan: Plan = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| PlanSyntaxError {
                origin: prefix.clone(),
                message: format!(
                    "line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    strip_position(&e.to_string())
                ),
            })?,
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| PlanSyntaxError {
                origin: prefix.clone(),
                message: match e.location() {
                    Some(l) => format!(
                        "line {}, column {}: {}",
                        l.line(),
                        l.column(),
                        strip_position(&e.to_string())
                    ),
                    None => format!("line 1: {e}"),
                },
            })?,
        };
        let task_lines = task_lines(text, plan.tasks.len());
        Ok(Self {
            plan: std::sync::Arc::new(plan),
            origin: origin.map(str::to_string),
            task_lines,
        })
    }

    /// A plan built in code (no lines).
    pub fn from_plan(plan: impl Into<std::sync::Arc<Plan>>) -> Self {
        let plan = plan.into();
        let n = plan.tasks.len();
        Self {
            plan,
            origin: None,
            task_lines: vec![None; n],
        }
    }
}

/// serde's messages end with " at line X column Y" (the prefix already says where) and name
/// Rust types; a plan's author reads what the value should be instead.
fn strip_position(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let mut out = msg.to_string();
    for (rust, plain) in [
        (
            "expected struct Plan",
            "expected a plan: a mapping with `name` and `tasks`",
        ),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("a boolean", "true or false"),
    ] {
        out = out.replace(rust, plain);
    }
    // A value quoted whole (a text file given as a plan) is cut to its start.
    if let Some(i) = out.find("invalid type: string \"") {
        let from = i + "invalid type: string \"".len();
        if let Some(len) = out[from..].rfind('"') {
            if let Some((cut, _)) = out[from..from + len].char_indices().nth(60) {
                out.replace_range(from + cut..from + len, "…");
            }
        }
    }
    if let Some(i) = out.find("expected struct ") {
        let end = out[i + 16..]
            .find(|c: char| !c.is_alphanumeric())
            .map_or(out.len(), |e| i + 16 + e);
        out.replace_range(i..end, "expected a mapping");
    }
    out
}

/// Finds the line where each item of the top-level `tasks` list starts.
fn task_lines(text: &str, n: usize) -> Vec<Option<usize>> {
    use yaml_rust2::parser::{Event, Parser};
    enum Frame {
        Map {
            expect_key: bool,
            key: Option<String>,
        },
        Seq,
    }
    let in_tasks = |stack: &[Frame]| {
        stack.len() == 2
            && matches!(stack[1], Frame::Seq)
            && matches!(&stack[0], Frame::Map { key: Some(k), .. } if k == "tasks")
    };
    let value_done = |stack: &mut Vec<Frame>| {
        if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
            *expect_key = true;
        }
    };
    let mut lines = Vec::with_capacity(n);
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Ok((event, mark)) = parser.next_token() {
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if in_tasks(&stack) {
                    lines.push(Some(mark.line()));
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        expect_key: true,
                        key: None,
                    }
                } else {
                    Frame::Seq
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                value_done(&mut stack);
            }
            Event::Scalar(value, ..) => {
                if in_tasks(&stack) {
                    lines.push(Some(mark.line()));
                }
                match stack.last_mut() {
                    Some(Frame::Map { expect_key, key }) if *expect_key => {
                        *key = Some(value);
                        *expect_key = false;
                    }
                    _ => value_done(&mut stack),
                }
            }
            Event::Alias(..) => value_done(&mut stack),
            _ => {}
        }
    }
    lines.resize(n, None);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_task_lines_in_block_and_flow_yaml() {
        let text = "name: x\ninputs: { a: { type: string } }\ntasks:\n  - id: one\n    tool: test:echo\n  - { id: two, tool: test:echo }\n";
        let src = PlanSource::parse(text, Format::Yaml, None).unwrap();
        assert_eq!(src.task_lines, vec![Some(4), Some(6)]);
    }

    #[test]
    fn finds_task_lines_in_json() {
        let text = "{\"name\": \"x\",\n \"tasks\": [\n  {\"id\": \"a\", \"tool\": \"test:echo\"},\n  {\"id\": \"b\", \"tool\": \"test:echo\"}]}";
        let src = PlanSource::parse(text, Format::Json, None).unwrap();
        assert_eq!(src.task_lines, vec![Some(3), Some(4)]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = PlanSource::parse(
            "name: broken\ntasks:\n  - { id: a, tool: test:echo\n",
            Format::Yaml,
            Some("p.yaml"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("p.yaml: line "), "{e}");
        let e =
            PlanSource::parse("name: x\ntasks: []\nbogus: 1\n", Format::Yaml, None).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn syntax_errors_say_what_the_value_should_be_not_a_rust_type() {
        for (text, want) in [
            (
                "- a\n",
                "expected a plan: a mapping with `name` and `tasks`",
            ),
            ("name: x\ntimeout_s: abc\ntasks: []\n", "expected a number"),
            (
                "name: x\ntasks:\n  - { id: a, tool: t, retry: { max: -1 } }\n",
                "expected a whole number, 0 or more",
            ),
        ] {
            let e = PlanSource::parse(text, Format::Yaml, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            for rust in ["u32", "f64", "struct"] {
                assert!(!e.contains(rust), "{e}");
            }
        }
    }
}
