//! Merging subtasks' results into their decomposed task's outputs, pure: `object` by subtask
//! id, `list` in subtask order, `concat` of strings or lists; with `collect`, the outputs
//! also say whether the result is partial and which subtasks failed, with why.

use crate::domain::event::payload::SubtaskFailure;
use crate::domain::plan::Merge;
use serde_json::{Map, Value};

/// One subtask as the merge sees it.
pub(crate) struct Part<'a> {
    /// Its id inside the parent (the part after `PARENT.`).
    pub id: &'a str,
    /// Its outputs, when it succeeded.
    pub outputs: Option<&'a Value>,
}

/// The value a subtask contributes to a `list` or `concat` merge: output `output`, or its
/// only output, or (`list` only) all of them.
fn contribution<'a>(
    part: &Part<'a>,
    output: Option<&str>,
    whole: bool,
) -> Result<&'a Value, String> {
    let outputs = part.outputs.unwrap_or(&Value::Null);
    match output {
        Some(name) => outputs
            .get(name)
            .ok_or_else(|| format!("subtask `{}` has no output `{name}`", part.id)),
        None if whole => Ok(outputs),
        None => match outputs.as_object() {
            Some(m) if m.len() == 1 => Ok(m.values().next().unwrap_or(&Value::Null)),
            _ => Err(format!(
                "subtask `{}` has {} outputs: say which one to concatenate with `merge: {{ kind: concat, output: NAME }}`",
                part.id,
                outputs.as_object().map_or(0, Map::len)
            )),
        },
    }
}

/// The merged outputs of the subtasks that succeeded (`parts`, in subtask order); `failed`
/// non-empty makes the result partial (`collect`). `llm` merges are not made here.
///
/// # Errors
/// What makes the results impossible to merge as asked (a missing output, mixed types for
/// `concat`).
pub(crate) fn merge(
    kind: Merge,
    output: Option<&str>,
    parts: &[Part<'_>],
    failed: Option<&[SubtaskFailure]>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    match kind {
        Merge::Object | Merge::Llm => {
            for p in parts {
                out.insert(
                    p.id.to_string(),
                    p.outputs.cloned().unwrap_or(Value::Object(Map::new())),
                );
            }
        }
        Merge::List => {
            let items = parts
                .iter()
                .map(|p| contribution(p, output, true).cloned())
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("items".into(), Value::Array(items));
        }
        Merge::Concat => {
            let values = parts
                .iter()
                .map(|p| contribution(p, output, false).map(|v| (p.id, v)))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("value".into(), concat(&values)?);
        }
    }
    if let Some(failed) = failed {
        out.insert("partial".into(), Value::Bool(!failed.is_empty()));
        out.insert(
            "failures".into(),
            serde_json::to_value(failed).unwrap_or(Value::Array(Vec::new())),
        );
    }
    Ok(out)
}

/// Strings joined, or lists concatenated; the first value decides which.
fn concat(values: &[(&str, &Value)]) -> Result<Value, String> {
    match values.first().map(|(_, v)| v) {
        None | Some(Value::String(_)) => {
            let mut text = String::new();
            for (id, v) in values {
                match v {
                    Value::String(s) => text.push_str(s),
                    other => return Err(not_same(id, "a string", other)),
                }
            }
            Ok(Value::String(text))
        }
        Some(Value::Array(_)) => {
            let mut items = Vec::new();
            for (id, v) in values {
                match v {
                    Value::Array(a) => items.extend(a.iter().cloned()),
                    other => return Err(not_same(id, "a list", other)),
                }
            }
            Ok(Value::Array(items))
        }
        Some(other) => Err(format!(
            "`concat` joins strings or lists; subtask `{}` gave {}",
            values[0].0,
            kind_of(other)
        )),
    }
}

fn not_same(id: &str, want: &str, got: &Value) -> String {
    format!(
        "`concat` needs {want} from every subtask; subtask `{id}` gave {}",
        kind_of(got)
    )
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(values: &[Value]) -> Vec<(String, Value)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect()
    }

    fn run(kind: Merge, output: Option<&str>, values: &[Value]) -> Result<Value, String> {
        let owned = parts(values);
        let parts: Vec<Part> = owned
            .iter()
            .map(|(id, v)| Part {
                id,
                outputs: Some(v),
            })
            .collect();
        merge(kind, output, &parts, None).map(Value::Object)
    }

    #[test]
    fn object_list_and_concat() {
        let vals = [json!({"text": "a"}), json!({"text": "b"})];
        assert_eq!(
            run(Merge::Object, None, &vals).unwrap(),
            json!({"0": {"text": "a"}, "1": {"text": "b"}})
        );
        assert_eq!(
            run(Merge::List, Some("text"), &vals).unwrap(),
            json!({"items": ["a", "b"]})
        );
        assert_eq!(
            run(Merge::Concat, None, &vals).unwrap(),
            json!({"value": "ab"})
        );
        assert_eq!(
            run(
                Merge::Concat,
                None,
                &[json!({"l": [1]}), json!({"l": [2, 3]})]
            )
            .unwrap(),
            json!({"value": [1, 2, 3]})
        );
    }

    #[test]
    fn concat_says_what_does_not_fit() {
        let e = run(Merge::Concat, None, &[json!({"a": "x"}), json!({"a": [1]})]).unwrap_err();
        assert_eq!(
            e,
            "`concat` needs a string from every subtask; subtask `1` gave a list"
        );
        let e = run(Merge::Concat, None, &[json!({"a": "x", "b": "y"})]).unwrap_err();
        assert!(e.contains("has 2 outputs"), "{e}");
        let e = run(Merge::List, Some("nope"), &[json!({"a": 1})]).unwrap_err();
        assert_eq!(e, "subtask `0` has no output `nope`");
    }

    #[test]
    fn collected_failures_make_a_partial_result() {
        let v = json!({"x": 1});
        let parts = [Part {
            id: "a",
            outputs: Some(&v),
        }];
        let failed = [SubtaskFailure {
            task: "p.b".into(),
            status: "failed".into(),
            error: "boom".into(),
        }];
        let out = merge(Merge::Object, None, &parts, Some(&failed)).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"a": {"x": 1}, "partial": true, "failures": [{"task": "p.b", "status": "failed", "error": "boom"}]})
        );
    }
}
