//! A PRP read from text (YAML or JSON): its syntax and shape, with the line of every key
//! path, and its problems as `FILE:LINE: key.path: message`.

use super::Prp;
use crate::domain::nesting;
use crate::domain::plan::Format;
use serde::Serialize;
use std::collections::HashMap;

use super::MAX_BYTES;

/// A problem of a PRP: its key path, its line when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where, as a key path: `implementation.steps[2].gates[0]`.
    pub path: String,
    /// The 1-based line, when the PRP came from text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every problem of a PRP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.origin, .problems))]
pub struct PrpErrors {
    /// The file, for messages.
    pub origin: Option<String>,
    /// The problems.
    pub problems: Vec<Problem>,
}

fn render(origin: &Option<String>, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = if n > 1 {
        format!("the PRP has {n} problems:\n")
    } else {
        String::new()
    };
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if n > 1 {
            out.push_str("  ");
        }
        match (origin, p.line) {
            (Some(o), Some(l)) => out.push_str(&format!("{o}:{l}: ")),
            (Some(o), None) => out.push_str(&format!("{o}: ")),
            (None, Some(l)) => out.push_str(&format!("line {l}: ")),
            (None, None) => {}
        }
        if !p.path.is_empty() {
            out.push_str(&format!("{}: ", p.path));
        }
        out.push_str(&p.message);
    }
    out
}

impl PrpErrors {
    /// One problem with no place.
    pub fn one(origin: Option<&str>, path: &str, message: impl Into<String>) -> Self {
        Self {
            origin: origin.map(str::to_string),
            problems: vec![Problem {
                path: path.to_string(),
                line: None,
                message: message.into(),
            }],
        }
    }
}

/// A PRP read from text, with the line of each key path.
#[derive(Debug, Clone)]
pub struct PrpSource {
    /// The PRP.
    pub prp: Prp,
    /// Where it came from.
    pub origin: Option<String>,
    lines: HashMap<String, usize>,
}

impl PrpSource {
    /// Reads a PRP (its syntax and shape; [`Prp::problems`] checks the rest).
    ///
    /// # Errors
    /// Too large or deep, not YAML/JSON, or not a PRP: the problem with its key path and
    /// line.
    pub fn parse(text: &str, format: Format, origin: Option<&str>) -> Result<Self, PrpErrors> {
        let fail = |path: String, line: Option<usize>, message: String| PrpErrors {
            origin: origin.map(str::to_string),
            problems: vec![Problem {
                path,
                line,
                message,
            }],
        };
        if text.len() > MAX_BYTES {
            return Err(fail(
                String::new(),
                None,
                format!(
                    "the PRP is {} bytes; at most {MAX_BYTES} are allowed",
                    text.len()
                ),
            ));
        }
        let deep = match format {
            Format::Json => nesting::check_json(text),
            Format::Yaml => nesting::check_yaml(text),
        };
        deep.map_err(|e| fail(String::new(), Some(e.line), e.to_string()))?;
        let lines = key_lines(text);
        let parsed: Result<Prp, (String, Option<usize>, String)> = match format {
            Format::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let line = e.inner().line();
                    (
                        e.path().to_string(),
                        Some(line),
                        without_position(&e.inner().to_string()),
                    )
                })
            }
            Format::Yaml => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
                Err(e) => Err((
                    String::new(),
                    e.location().map(|l| l.line()),
                    without_position(&e.to_string()),
                )),
                Ok(value) => serde_path_to_error::deserialize(value).map_err(|e| {
                    let path = e.path().to_string();
                    let line = line_of(&lines, &path);
                    (path, line, without_position(&e.inner().to_string()))
                }),
            },
        };
        let prp = parsed.map_err(|(path, line, message)| {
            let path = if path == "." { String::new() } else { path };
            fail(path, line, message)
        })?;
        Ok(Self {
            prp,
            origin: origin.map(str::to_string),
            lines,
        })
    }

    /// The problems of `found` with their lines.
    pub fn errors(&self, found: Vec<(String, String)>) -> PrpErrors {
        PrpErrors {
            origin: self.origin.clone(),
            problems: found
                .into_iter()
                .map(|(path, message)| Problem {
                    line: line_of(&self.lines, &path),
                    path,
                    message,
                })
                .collect(),
        }
    }
}

fn without_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The line of `path`, or of the nearest enclosing key path that has one.
fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut p = path;
    loop {
        if let Some(l) = lines.get(p) {
            return Some(*l);
        }
        let cut = p.rfind(['.', '['])?;
        p = &p[..cut];
    }
}

/// The 1-based line of every key path of a YAML (or JSON) text: `a.b[2].c`.
fn key_lines(text: &str) -> HashMap<String, usize> {
    use yaml_rust2::parser::{Event, Parser};
    enum Frame {
        Map {
            key: Option<String>,
            expect_key: bool,
        },
        Seq {
            next: usize,
        },
    }
    fn path(stack: &[Frame]) -> String {
        let mut out = String::new();
        for f in stack {
            match f {
                Frame::Map { key: Some(k), .. } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Frame::Seq { next } => out.push_str(&format!("[{}]", next.saturating_sub(1))),
                Frame::Map { key: None, .. } => {}
            }
        }
        out
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Ok((event, mark)) = parser.next_token() {
        let line = mark.line();
        // A value starts: a sequence item gets its index, a mapping value its key's place.
        let starts_value = |stack: &mut Vec<Frame>, out: &mut HashMap<String, usize>| {
            if let Some(Frame::Seq { next }) = stack.last_mut() {
                *next += 1;
                out.entry(path(stack)).or_insert(line);
            }
        };
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                starts_value(&mut stack, &mut out);
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        key: None,
                        expect_key: true,
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
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        expect_key: true,
                        ..
                    })
                );
                if is_key {
                    if let Some(Frame::Map { key, expect_key }) = stack.last_mut() {
                        *key = Some(value);
                        *expect_key = false;
                    }
                    out.entry(path(&stack)).or_insert(line);
                } else {
                    starts_value(&mut stack, &mut out);
                    if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
                        *expect_key = true;
                    }
                }
            }
            _ => {}
        }
    }
    out
}
