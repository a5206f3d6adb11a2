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
        /// A `${tasks.ID.outputs.PATH}` reference.
        output: String,
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
    /// A `${…}` reference to earlier answers or outputs, taken when there is no `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_default: Option<String>,
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
                if let Err(e) = regex::Regex::new(re) {
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
        if let Some(s) = &self.smart_default {
            if !smart_reference(s) {
                out.push(format!(
                    "`smart_default` must be one `${{…}}` reference to an earlier answer or an output, got `{s}`"
                ));
            }
        }
        if matches!(self.timeout_s, Some(t) if !(t.is_finite() && t > 0.0)) {
            out.push("`timeout_s` must be a number of seconds above 0".into());
        }
        out
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
            let ok = regex::Regex::new(re)
                .map(|r| r.is_match(s))
                .unwrap_or(false);
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
    if let Some(path) = inner.strip_prefix("answers.") {
        return path.split('.').all(|seg| !seg.is_empty());
    }
    matches!(
        crate::domain::reference::references(s).as_deref(),
        Ok([crate::domain::reference::Reference::TaskOutput { .. }])
    )
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
            q("{ id: x, text: t, type: text, smart_default: nope }").problems()[0]
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
