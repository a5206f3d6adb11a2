//! Typed questions to the user, pure: a question's spec as written (type, options, default,
//! smart default, conditions, validation rules), the check of a spec, the check of an answer
//! against it (naming the rule it breaks), and what a question resolves to when the user
//! says "I don't know", gives an empty optional answer or does not answer in time — the
//! declared `default`, else the `smart_default`, else null when optional; nofx never invents a
//! value.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a question's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionType {
    /// Free text.
    Text,
    /// One of `options` (or, with `allow_other`, any text).
    Select,
    /// Some of `options` (or, with `allow_other`, any texts), as a list.
    Multiselect,
    /// `true` or `false`.
    Boolean,
    /// A number.
    Number,
}

impl QuestionType {
    /// `text`, `select`, `multiselect`, `boolean` or `number`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Select => "select",
            Self::Multiselect => "multiselect",
            Self::Boolean => "boolean",
            Self::Number => "number",
        }
    }
}

/// When a question is asked: after another question was answered with `value`, or when an
/// output (a `${tasks…}` reference) has `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum DependsOn {
    /// `{question: ID, value: V}`.
    Question {
        /// The earlier question.
        question: String,
        /// The answer that makes this one asked.
        value: Value,
    },
    /// `{output: REF, value: V}`.
    Output {
        /// A `${tasks.ID.outputs.PATH}` reference (in a plan's `ask` task, filled in with
        /// the output's value when the task runs).
        output: Value,
        /// The value that makes this one asked.
        value: Value,
    },
}

/// Rules an answer must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// A regular expression text answers must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Fewest characters of a text answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<usize>,
    /// Most characters of a text answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Fewest choices of a multiselect answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<usize>,
    /// Most choices of a multiselect answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    /// Smallest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

fn yes() -> bool {
    true
}

/// A question as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its id: letters, digits, `_` and `-`.
    pub id: String,
    /// What is asked.
    pub text: String,
    /// The answer's type.
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// The choices of a select or multiselect question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The answer taken on "I don't know", an empty optional answer or the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A `${answers.ID…}` or `${tasks.ID.outputs…}` reference, taken when there is no
    /// `default` (in a plan's `ask` task a `${tasks…}` reference is filled in with the
    /// output's value when the task runs, so the question as asked holds that value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_default: Option<Value>,
    /// When it is asked at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<DependsOn>,
    /// Rules the answer must satisfy.
    #[serde(default, rename = "validate", skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    /// Whether an answer (given or defaulted) is needed.
    #[serde(default = "yes")]
    pub required: bool,
    /// Seconds to wait for an answer before the default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// A select or multiselect question also accepts free text.
    #[serde(default)]
    pub allow_other: bool,
}

/// An answer as given.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A value.
    Value(Value),
    /// "I don't know".
    Idk,
}

/// Where a stored answer's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// The user gave it.
    User,
    /// The question's `default`.
    Default,
    /// The question's `smart_default`.
    SmartDefault,
}

/// A question's answer as stored: the value, where it came from, who gave it (`timeout` for
/// the deadline) and whether the deadline did; the same document in events, over HTTP and
/// in the CLI's `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// The value (null: an optional question left without one, or `no_default`).
    pub value: Value,
    /// `user`, `default` or `smart_default` (null when there is no value).
    pub source: Option<AnswerSource>,
    /// Who answered (`timeout` for the deadline).
    pub answered_by: String,
    /// Whether the deadline answered it.
    pub timed_out: bool,
    /// When (RFC 3339).
    pub answered_at: String,
}

/// Where a question stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionStatus {
    /// Asked; no answer yet.
    Pending,
    /// Answered by a person, or defaulted (I don't know, an empty optional answer, the
    /// deadline).
    Answered,
    /// Not asked: its `depends_on` was not met.
    Skipped,
    /// Required, and neither answered nor with a default to fall back on: its task fails
    /// with `no_default`.
    NoDefault,
}

impl QuestionStatus {
    /// `pending`, `answered`, `skipped` or `no_default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Answered => "answered",
            Self::Skipped => "skipped",
            Self::NoDefault => "no_default",
        }
    }

    /// Parses the text [`QuestionStatus::as_str`] gives.
    ///
    /// # Errors
    /// Any other text, naming the statuses.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(Self::Pending),
            "answered" => Ok(Self::Answered),
            "skipped" => Ok(Self::Skipped),
            "no_default" => Ok(Self::NoDefault),
            other => Err(format!(
                "unknown question status `{other}` (expected pending, answered, skipped or no_default)"
            )),
        }
    }
}

impl AnswerSource {
    /// `user`, `default` or `smart_default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Default => "default",
            Self::SmartDefault => "smart_default",
        }
    }

    /// Parses the text [`AnswerSource::as_str`] gives.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Self::User),
            "default" => Ok(Self::Default),
            "smart_default" => Ok(Self::SmartDefault),
            other => Err(format!("unknown answer source `{other}`")),
        }
    }
}

/// Most questions one `ask` asks (generated ones included).
pub const MAX_QUESTIONS: usize = 50;
/// Most characters of a question's text, of an option and of a regex.
const MAX_TEXT: usize = 4_000;
const MAX_OPTION: usize = 500;
const MAX_REGEX: usize = 1_000;
/// Most options of a question.
const MAX_OPTIONS: usize = 200;
/// Most bytes of an answer (or a default) as JSON.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An answer that breaks a rule of its question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("question `{question}`: {rule}: {why}")]
pub struct Rejected {
    /// The question.
    pub question: String,
    /// The rule: `type`, `option`, `regex`, `min_len`, `max_len`, `min_items`, `max_items`,
    /// `min`, `max`, `required`.
    pub rule: &'static str,
    /// What is wrong.
    pub why: String,
}

/// A required question with no answer, no default and no smart default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no_default: question `{0}` is required and has no default or smart_default to fall back on"
)]
pub struct NoDefault(pub String);

impl Question {
    /// Every problem of the spec itself: an empty text, a select or multiselect with fewer
    /// than 2 options, options on another type, a default that is not an acceptable answer,
    /// a bad regex, bounds the wrong way round, a timeout that is not a positive number.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(why) = crate::domain::TaskKey::parse(&self.id) {
            out.push(why.replace("task id", "question id"));
        }
        if self.text.trim().is_empty() {
            out.push("`text` must say what is asked".into());
        }
        let choosing = matches!(self.kind, QuestionType::Select | QuestionType::Multiselect);
        if choosing && self.options.len() < 2 {
            out.push(format!(
                "a {} question needs at least 2 options, got {}",
                self.kind.as_str(),
                self.options.len()
            ));
        }
        if !choosing && !self.options.is_empty() {
            out.push(format!(
                "`options` are for select and multiselect questions, not {}",
                self.kind.as_str()
            ));
        }
        if !choosing && self.allow_other {
            out.push("`allow_other` is for select and multiselect questions".into());
        }
        if let Some(rules) = &self.rules {
            if let Some(re) = &rules.regex {
                if re.chars().count() > MAX_REGEX {
                    out.push(format!(
                        "validate.regex is longer than {MAX_REGEX} characters"
                    ));
                } else if let Err(e) = compile(re) {
                    out.push(format!("validate.regex is not a regular expression: {e}"));
                }
            }
            let backwards =
                |lo: Option<f64>, hi: Option<f64>| matches!((lo, hi), (Some(a), Some(b)) if a > b);
            let f = |v: Option<usize>| v.map(|n| n as f64);
            if backwards(f(rules.min_len), f(rules.max_len)) {
                out.push("validate.min_len is above validate.max_len".into());
            }
            if backwards(f(rules.min_items), f(rules.max_items)) {
                out.push("validate.min_items is above validate.max_items".into());
            }
            if backwards(rules.min, rules.max) {
                out.push("validate.min is above validate.max".into());
            }
        }
        if let Some(d) = &self.default {
            if let Err(e) = self.accept(d) {
                let why = if e.rule == "option" {
                    format!("`default` {d} is not among the options")
                } else {
                    format!(
                        "`default` {d} is not an acceptable answer ({}: {})",
                        e.rule, e.why
                    )
                };
                out.push(why);
            }
        }
        if let Some(Value::String(s)) = &self.smart_default {
            if s.contains("${") && !smart_reference(s) {
                out.push(format!(
                    "`smart_default` must be one `${{…}}` reference to an earlier answer or an output, got `{s}`"
                ));
            }
        }
        if let Some(DependsOn::Output {
            output: Value::String(s),
            ..
        }) = &self.depends_on
        {
            if s.contains("${") && !output_reference(s) {
                out.push(format!(
                    "`depends_on.output` must be one `${{tasks.ID.outputs.PATH}}` reference, got `{s}`"
                ));
            }
        }
        self.size_problems(&mut out);
        if matches!(self.timeout_s, Some(t) if !(t.is_finite() && t > 0.0)) {
            out.push("`timeout_s` must be a number of seconds above 0".into());
        }
        out
    }

    fn size_problems(&self, out: &mut Vec<String>) {
        if self.text.chars().count() > MAX_TEXT {
            out.push(format!("`text` is longer than {MAX_TEXT} characters"));
        }
        if self.options.len() > MAX_OPTIONS {
            out.push(format!(
                "{} options; at most {MAX_OPTIONS} are allowed",
                self.options.len()
            ));
        }
        if let Some(o) = self.options.iter().find(|o| o.chars().count() > MAX_OPTION) {
            out.push(format!(
                "option `{}…` is longer than {MAX_OPTION} characters",
                o.chars().take(20).collect::<String>()
            ));
        }
        let mut seen: Vec<&str> = Vec::new();
        for o in &self.options {
            if seen.contains(&o.as_str()) {
                out.push(format!("option `{o}` is listed twice"));
            }
            seen.push(o);
        }
        for (what, v) in [
            ("default", &self.default),
            ("smart_default", &self.smart_default),
        ] {
            if v.as_ref()
                .is_some_and(|v| v.to_string().len() > MAX_ANSWER_BYTES)
            {
                out.push(format!("`{what}` is larger than {MAX_ANSWER_BYTES} bytes"));
            }
        }
    }

    /// The ids of the questions asked with this one that it needs settled first: the
    /// question of its `depends_on` and the answer its `smart_default` names.
    pub fn needs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(DependsOn::Question { question, .. }) = &self.depends_on {
            out.push(question.as_str());
        }
        if let Some((id, _)) = self
            .smart_default
            .as_ref()
            .and_then(Value::as_str)
            .and_then(answers_reference)
        {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The smart default's value: the answer it names (looked up with `answer`), or the
    /// value a `${tasks…}` reference was filled in with; `None` when it names nothing
    /// that has a value.
    pub fn smart_value(&self, answer: &dyn Fn(&str) -> Option<Value>) -> Option<Value> {
        match self.smart_default.as_ref()? {
            Value::String(s) if s.contains("${") => {
                let (id, path) = answers_reference(s)?;
                let mut cur = answer(id)?;
                for seg in path {
                    cur = match cur {
                        Value::Object(mut m) => m.remove(seg)?,
                        Value::Array(mut a) => {
                            let i: usize = seg.parse().ok()?;
                            (i < a.len()).then(|| a.swap_remove(i))?
                        }
                        _ => return None,
                    };
                }
                (!cur.is_null()).then_some(cur)
            }
            Value::Null => None,
            v => Some(v.clone()),
        }
    }

    /// Whether the question is asked, given the answer of the question it depends on (or
    /// the value its output reference was filled in with): met when equal to `value`, or
    /// when a list containing it.
    pub fn is_asked(&self, answer: &dyn Fn(&str) -> Option<Value>) -> bool {
        let (actual, want) = match &self.depends_on {
            None => return true,
            Some(DependsOn::Question { question, value }) => (answer(question), value),
            Some(DependsOn::Output { output, value }) => (Some(output.clone()), value),
        };
        match actual {
            Some(Value::Array(items)) if !want.is_array() => items.contains(want),
            Some(v) => &v == want,
            None => false,
        }
    }

    /// What `depends_on` waits for, in words (for `question.skipped`).
    pub fn condition(&self) -> String {
        match &self.depends_on {
            None => String::new(),
            Some(DependsOn::Question { question, value }) => {
                format!("asked when question `{question}` is answered {value}")
            }
            Some(DependsOn::Output { output, value }) => {
                format!("asked when the output is {value} (it is {output})")
            }
        }
    }

    fn rejected(&self, rule: &'static str, why: String) -> Rejected {
        Rejected {
            question: self.id.clone(),
            rule,
            why,
        }
    }

    /// `value` as an answer to this question (a number given as text is read as a number).
    ///
    /// # Errors
    /// The first rule it breaks.
    pub fn accept(&self, value: &Value) -> Result<Value, Rejected> {
        if value.to_string().len() > MAX_ANSWER_BYTES {
            return Err(self.rejected(
                "max_len",
                format!("an answer is at most {MAX_ANSWER_BYTES} bytes"),
            ));
        }
        let rules = self.rules.clone().unwrap_or_default();
        let value = match (self.kind, value) {
            (QuestionType::Text, Value::String(s)) => {
                self.check_text(s, &rules)?;
                value.clone()
            }
            (QuestionType::Select, Value::String(s)) => {
                self.check_choice(s)?;
                self.check_text(s, &rules)?;
                value.clone()
            }
            (QuestionType::Multiselect, Value::Array(items)) => {
                let mut seen: Vec<&str> = Vec::with_capacity(items.len());
                for item in items {
                    let Some(s) = item.as_str() else {
                        return Err(
                            self.rejected("type", format!("every choice must be text, got {item}"))
                        );
                    };
                    self.check_choice(s)?;
                    if seen.contains(&s) {
                        return Err(self.rejected("type", format!("`{s}` is chosen twice")));
                    }
                    seen.push(s);
                }
                if let Some(n) = rules.min_items.filter(|&n| items.len() < n) {
                    return Err(self.rejected(
                        "min_items",
                        format!("choose at least {n}, got {}", items.len()),
                    ));
                }
                if let Some(n) = rules.max_items.filter(|&n| items.len() > n) {
                    return Err(self.rejected(
                        "max_items",
                        format!("choose at most {n}, got {}", items.len()),
                    ));
                }
                value.clone()
            }
            (QuestionType::Boolean, Value::Bool(_)) => value.clone(),
            (QuestionType::Boolean, Value::String(s)) => {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "y" => Value::Bool(true),
                    "false" | "no" | "n" => Value::Bool(false),
                    _ => {
                        return Err(self.rejected("type", format!("expected yes or no, got `{s}`")))
                    }
                }
            }
            (QuestionType::Number, Value::Number(_)) | (QuestionType::Number, Value::String(_)) => {
                let n = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                    _ => None,
                };
                let Some(n) = n else {
                    return Err(self.rejected("type", format!("expected a number, got {value}")));
                };
                if let Some(lo) = rules.min.filter(|&lo| n < lo) {
                    return Err(self.rejected("min", format!("must be at least {lo}, got {n}")));
                }
                if let Some(hi) = rules.max.filter(|&hi| n > hi) {
                    return Err(self.rejected("max", format!("must be at most {hi}, got {n}")));
                }
                match value {
                    Value::Number(_) => value.clone(),
                    _ => serde_json::Number::from_f64(n)
                        .map(|num| {
                            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                                Value::from(n as i64)
                            } else {
                                Value::Number(num)
                            }
                        })
                        .unwrap_or(Value::Null),
                }
            }
            (kind, other) => {
                return Err(self.rejected(
                    "type",
                    format!(
                        "a {} question takes {}, got {other}",
                        kind.as_str(),
                        expects(kind)
                    ),
                ))
            }
        };
        Ok(value)
    }

    fn check_text(&self, s: &str, rules: &Rules) -> Result<(), Rejected> {
        let len = s.chars().count();
        if let Some(n) = rules.min_len.filter(|&n| len < n) {
            return Err(self.rejected("min_len", format!("at least {n} characters, got {len}")));
        }
        if let Some(n) = rules.max_len.filter(|&n| len > n) {
            return Err(self.rejected("max_len", format!("at most {n} characters, got {len}")));
        }
        if let Some(re) = &rules.regex {
            let ok = compile(re).map(|r| r.is_match(s)).unwrap_or(false);
            if !ok {
                return Err(self.rejected("regex", format!("`{s}` does not match `{re}`")));
            }
        }
        Ok(())
    }

    fn check_choice(&self, s: &str) -> Result<(), Rejected> {
        if self.allow_other || self.options.iter().any(|o| o == s) {
            return Ok(());
        }
        Err(self.rejected(
            "option",
            format!("`{s}` is not one of: {}", self.options.join(", ")),
        ))
    }

    /// A value typed as text (a command line, a terminal) read as this question's answer:
    /// a multiselect takes a JSON list or comma-separated choices; anything else stays text
    /// ([`Question::accept`] reads numbers and yes/no from text).
    pub fn from_text(&self, text: &str) -> Value {
        if self.kind == QuestionType::Multiselect {
            if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(text) {
                return v;
            }
            return Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            );
        }
        Value::String(text.to_string())
    }

    /// Whether an answer counts as empty (an optional question answered so takes its
    /// default).
    pub fn is_empty_answer(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }

    /// What the question resolves to when no usable answer came (I don't know, an empty
    /// optional answer, the deadline): `default`, else `smart` (the smart default's value,
    /// when it resolved and is an acceptable answer), else null when optional.
    ///
    /// # Errors
    /// A required question with neither default.
    pub fn fallback(
        &self,
        smart: Option<&Value>,
    ) -> Result<(Value, Option<AnswerSource>), NoDefault> {
        if let Some(d) = &self.default {
            return Ok((d.clone(), Some(AnswerSource::Default)));
        }
        if let Some(v) = smart.and_then(|s| self.accept(s).ok()) {
            return Ok((v, Some(AnswerSource::SmartDefault)));
        }
        if self.required {
            return Err(NoDefault(self.id.clone()));
        }
        Ok((Value::Null, None))
    }
}

/// Whether `s` is one reference a smart default may use: `${answers.ID…}` (an earlier
/// answer) or `${tasks.ID.outputs…}` (an output).
fn smart_reference(s: &str) -> bool {
    let s = s.trim();
    let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    if inner.contains(['{', '}', '$']) {
        return false;
    }
    if inner.starts_with("answers.") {
        return answers_reference(s).is_some();
    }
    output_reference(s)
}

/// A question's regex, with bounded size (a spec is untrusted input).
fn compile(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

/// Whether `s` is exactly one `${tasks.ID.outputs…}` reference.
fn output_reference(s: &str) -> bool {
    matches!(
        crate::domain::reference::references(s.trim()).as_deref(),
        Ok([crate::domain::reference::Reference::TaskOutput { .. }])
    ) && s.trim().starts_with("${")
        && s.trim().ends_with('}')
}

/// The question id and path of a `${answers.ID.PATH}` reference.
fn answers_reference(s: &str) -> Option<(&str, Vec<&str>)> {
    let inner = s.trim().strip_prefix("${answers.")?.strip_suffix('}')?;
    let mut parts = inner.split('.');
    let id = parts.next().filter(|id| !id.is_empty())?;
    let path: Vec<&str> = parts.collect();
    (!inner.contains(['{', '}', '$']) && path.iter().all(|p| !p.is_empty())).then_some((id, path))
}

fn expects(kind: QuestionType) -> &'static str {
    match kind {
        QuestionType::Text | QuestionType::Select => "text",
        QuestionType::Multiselect => "a list of choices",
        QuestionType::Boolean => "true or false",
        QuestionType::Number => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(yaml: &str) -> Question {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn specs_are_checked() {
        let bad = q("{ id: db, text: Which database?, type: select, options: [postgres], default: mysql, validate: { regex: '(' } }");
        let p = bad.problems();
        assert!(
            p.iter().any(|s| s.contains("at least 2 options, got 1")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|s| s.contains("`default` \"mysql\" is not among the options")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|s| s.contains("validate.regex is not a regular expression")),
            "{p:?}"
        );
        let ok = q("{ id: db, text: Which database?, type: select, options: [postgres, sqlite], default: sqlite }");
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        assert!(
            q("{ id: x, text: t, type: text, smart_default: '${nope.x}' }").problems()[0]
                .contains("smart_default")
        );
        assert!(
            q("{ id: x, text: t, type: text, smart_default: '${answers.name}' }")
                .problems()
                .is_empty()
        );
        assert!(
            q("{ id: x, text: t, type: text, smart_default: '${tasks.scan.outputs.lang}' }")
                .problems()
                .is_empty()
        );
        assert!(
            !q("{ id: x, text: t, type: text, smart_default: '${answers.}' }")
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn conditions_and_smart_defaults_read_earlier_answers() {
        let answers = |id: &str| match id {
            "db" => Some(json!("postgres")),
            "langs" => Some(json!(["rust", "go"])),
            "cfg" => Some(json!({"port": 5432, "hosts": ["a", "b"]})),
            _ => None,
        };
        let on_db = q(
            "{ id: pool, text: t, type: number, depends_on: { question: db, value: postgres } }",
        );
        assert!(on_db.is_asked(&answers));
        assert_eq!(on_db.needs(), ["db"]);
        let on_list =
            q("{ id: g, text: t, type: text, depends_on: { question: langs, value: go } }");
        assert!(on_list.is_asked(&answers), "a list holding the value");
        let off =
            q("{ id: p, text: t, type: text, depends_on: { question: langs, value: python } }");
        assert!(!off.is_asked(&answers));
        assert!(off.condition().contains("`langs` is answered \"python\""));
        let filled = q(
            "{ id: p, text: t, type: text, depends_on: { output: [rust, python], value: python } }",
        );
        assert!(filled.is_asked(&answers) && filled.needs().is_empty());
        let port = q("{ id: p, text: t, type: number, smart_default: '${answers.cfg.port}' }");
        assert_eq!(port.needs(), ["cfg"]);
        assert_eq!(port.smart_value(&answers), Some(json!(5432)));
        let host = q("{ id: h, text: t, type: text, smart_default: '${answers.cfg.hosts.1}' }");
        assert_eq!(host.smart_value(&answers), Some(json!("b")));
        let missing = q("{ id: h, text: t, type: text, smart_default: '${answers.cfg.nope}' }");
        assert_eq!(missing.smart_value(&answers), None);
        let value = q("{ id: h, text: t, type: text, smart_default: cargo test }");
        assert_eq!(
            value.smart_value(&answers),
            Some(json!("cargo test")),
            "a filled-in output"
        );
        let multi = q("{ id: m, text: t, type: multiselect, options: [a, b] }");
        assert_eq!(multi.from_text("a, b"), json!(["a", "b"]));
        assert_eq!(multi.from_text("[\"b\"]"), json!(["b"]));
        assert_eq!(on_db.from_text("7"), json!("7"));
    }

    #[test]
    fn answers_are_checked_by_type_and_rule() {
        let sel = q("{ id: db, text: t, type: select, options: [postgres, sqlite] }");
        assert_eq!(sel.accept(&json!("sqlite")).unwrap(), json!("sqlite"));
        let e = sel.accept(&json!("mysql")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "question `db`: option: `mysql` is not one of: postgres, sqlite"
        );
        let other = q("{ id: db, text: t, type: select, options: [a, b], allow_other: true }");
        assert_eq!(other.accept(&json!("c")).unwrap(), json!("c"));
        let multi = q("{ id: m, text: t, type: multiselect, options: [a, b, c], validate: { min_items: 1, max_items: 2 } }");
        assert_eq!(multi.accept(&json!(["a", "c"])).unwrap(), json!(["a", "c"]));
        assert_eq!(multi.accept(&json!([])).unwrap_err().rule, "min_items");
        assert_eq!(
            multi.accept(&json!(["a", "b", "c"])).unwrap_err().rule,
            "max_items"
        );
        assert_eq!(multi.accept(&json!("a")).unwrap_err().rule, "type");
        let text =
            q("{ id: name, text: t, type: text, validate: { regex: '^[a-z]+$', max_len: 5 } }");
        assert_eq!(text.accept(&json!("abc")).unwrap(), json!("abc"));
        assert_eq!(text.accept(&json!("abcdef")).unwrap_err().rule, "max_len");
        assert_eq!(text.accept(&json!("AB")).unwrap_err().rule, "regex");
        let n = q("{ id: n, text: t, type: number, validate: { min: 1, max: 10 } }");
        assert_eq!(n.accept(&json!("7")).unwrap(), json!(7));
        assert_eq!(n.accept(&json!(2.5)).unwrap(), json!(2.5));
        assert_eq!(n.accept(&json!(11)).unwrap_err().rule, "max");
        assert_eq!(n.accept(&json!("many")).unwrap_err().rule, "type");
        let b = q("{ id: b, text: t, type: boolean }");
        assert_eq!(b.accept(&json!("yes")).unwrap(), json!(true));
        assert_eq!(b.accept(&json!(3)).unwrap_err().rule, "type");
    }

    #[test]
    fn no_answer_falls_back_and_never_invents_one() {
        let with_default = q("{ id: a, text: t, type: text, default: main }");
        assert_eq!(
            with_default.fallback(Some(&json!("x"))).unwrap(),
            (json!("main"), Some(AnswerSource::Default))
        );
        let smart = q(
            "{ id: a, text: t, type: number, smart_default: '${answers.n}', validate: { max: 5 } }",
        );
        assert_eq!(
            smart.fallback(Some(&json!(3))).unwrap(),
            (json!(3), Some(AnswerSource::SmartDefault))
        );
        // A smart default that breaks a rule is not taken.
        assert_eq!(
            smart.fallback(Some(&json!(9))).unwrap_err(),
            NoDefault("a".into())
        );
        let optional = q("{ id: a, text: t, type: text, required: false }");
        assert_eq!(optional.fallback(None).unwrap(), (Value::Null, None));
        assert_eq!(
            q("{ id: a, text: t, type: text }").fallback(None).unwrap_err().to_string(),
            "no_default: question `a` is required and has no default or smart_default to fall back on"
        );
        assert!(
            Question::is_empty_answer(&json!("  ")) && !Question::is_empty_answer(&json!(false))
        );
    }
}
