//! References inside task inputs: `${inputs.NAME}` and `${tasks.ID.outputs.PATH}`.
//! Anything else in `${…}` (a shell's `${HOME}`) is left as written; `$${` writes `${`.
//! A string that is exactly one reference takes the referenced value with its type; a
//! reference inside longer text is written into the text.

use serde_json::Value;

/// One reference found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${inputs.NAME}`
    Input(String),
    /// `${tasks.ID.outputs.PATH}`; an empty path means every output.
    TaskOutput {
        /// The task id.
        task: String,
        /// Dotted path into its outputs; numbers index arrays.
        path: Vec<String>,
    },
}

/// A `${inputs…}` or `${tasks…}` that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad reference `${{{text}}}`: {why}")]
pub struct BadReference {
    /// What stood between `${` and `}`.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

enum Piece<'a> {
    Text(&'a str),
    Literal,
    Ref(Reference),
}

fn parse_inner(inner: &str) -> Result<Option<Reference>, BadReference> {
    let bad = |why: &str| BadReference {
        text: inner.to_string(),
        why: why.to_string(),
    };
    if let Some(name) = inner.strip_prefix("inputs.") {
        if name.is_empty() || name.contains('.') {
            return Err(bad("expected `${inputs.NAME}`"));
        }
        return Ok(Some(Reference::Input(name.to_string())));
    }
    if let Some(rest) = inner.strip_prefix("tasks.") {
        let mut parts = rest.split('.');
        let task = parts.next().unwrap_or_default();
        if task.is_empty() {
            return Err(bad("expected `${tasks.ID.outputs.PATH}`"));
        }
        if parts.next() != Some("outputs") {
            return Err(bad("expected `${tasks.ID.outputs.PATH}`"));
        }
        let path: Vec<String> = parts.map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(bad("the output path has an empty segment"));
        }
        return Ok(Some(Reference::TaskOutput {
            task: task.to_string(),
            path,
        }));
    }
    Ok(None)
}

fn pieces(s: &str) -> Result<Vec<Piece<'_>>, BadReference> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos..];
        if after.starts_with("$${") {
            out.push(Piece::Text(&rest[..pos]));
            out.push(Piece::Literal);
            rest = &rest[pos + 3..];
            continue;
        }
        if after.starts_with("${") {
            if let Some(end) = after.find('}') {
                let inner = &after[2..end];
                if let Some(r) = parse_inner(inner)? {
                    out.push(Piece::Text(&rest[..pos]));
                    out.push(Piece::Ref(r));
                    rest = &rest[pos + end + 1..];
                    continue;
                }
            }
        }
        out.push(Piece::Text(&rest[..pos + 1]));
        rest = &rest[pos + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Every reference in `s`.
///
/// # Errors
/// When a `${inputs…}` or `${tasks…}` is malformed. Anything else in `${…}` (`${HOME}`) is
/// text, not a reference.
pub fn references(s: &str) -> Result<Vec<Reference>, BadReference> {
    Ok(pieces(s)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// Every reference in a JSON value, with the JSON pointer of the string holding it.
///
/// # Errors
/// The first malformed reference.
pub fn references_in(value: &Value) -> Result<Vec<(String, Reference)>, BadReference> {
    let mut out = Vec::new();
    walk(value, String::new(), &mut out)?;
    Ok(out)
}

fn walk(
    value: &Value,
    pointer: String,
    out: &mut Vec<(String, Reference)>,
) -> Result<(), BadReference> {
    match value {
        Value::String(s) => {
            for r in references(s)? {
                out.push((pointer.clone(), r));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{pointer}/{i}"), out)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                walk(v, format!("{pointer}/{key}"), out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why a reference could not be resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The reference is malformed.
    #[error(transparent)]
    Bad(#[from] BadReference),
    /// The plan has no such input.
    #[error("`${{inputs.{0}}}` names no input of the plan")]
    UnknownInput(String),
    /// The task has no output at that path.
    #[error("`${{tasks.{task}.outputs.{path}}}`: task `{task}` has no output at `{path}`")]
    MissingOutput {
        /// The task.
        task: String,
        /// The dotted path.
        path: String,
    },
    /// The task has not succeeded, so it has no outputs.
    #[error("`${{tasks.{0}.outputs…}}`: task `{0}` has no outputs")]
    NoOutputs(String),
}

/// Looks up what references point at.
pub trait Lookup {
    /// The value of a plan input.
    fn input(&self, name: &str) -> Option<&Value>;
    /// The outputs of a succeeded task.
    fn outputs(&self, task: &str) -> Option<&Value>;
}

fn lookup_ref(r: &Reference, ctx: &dyn Lookup) -> Result<Value, ResolveError> {
    match r {
        Reference::Input(name) => ctx
            .input(name)
            .cloned()
            .ok_or_else(|| ResolveError::UnknownInput(name.clone())),
        Reference::TaskOutput { task, path } => {
            let mut cur = ctx
                .outputs(task)
                .ok_or_else(|| ResolveError::NoOutputs(task.clone()))?;
            for seg in path {
                let next = match cur {
                    Value::Object(m) => m.get(seg),
                    Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                };
                cur = next.ok_or_else(|| ResolveError::MissingOutput {
                    task: task.clone(),
                    path: path.join("."),
                })?;
            }
            Ok(cur.clone())
        }
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resolves every reference in `value`; only the references whose kind `only` accepts are
/// replaced (the others, and their `$${` escapes, are kept for a later pass).
///
/// # Errors
/// The first reference that cannot be resolved.
pub fn resolve(
    value: &Value,
    ctx: &dyn Lookup,
    only: fn(&Reference) -> bool,
) -> Result<Value, ResolveError> {
    Ok(match value {
        Value::String(s) => resolve_str(s, ctx, only)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, ctx, only))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => resolve_map(map, ctx, only)?,
        other => other.clone(),
    })
}

/// Resolves every reference in the values of `map` (as [`resolve`] does for one value).
///
/// # Errors
/// The first reference that cannot be resolved.
pub fn resolve_map(
    map: &serde_json::Map<String, Value>,
    ctx: &dyn Lookup,
    only: fn(&Reference) -> bool,
) -> Result<Value, ResolveError> {
    Ok(Value::Object(
        map.iter()
            .map(|(k, v)| Ok((k.clone(), resolve(v, ctx, only)?)))
            .collect::<Result<_, ResolveError>>()?,
    ))
}

/// Accepts every reference: the final pass before a task runs.
pub fn all(_: &Reference) -> bool {
    true
}

/// Accepts only `${inputs…}`: the pass made when a plan is submitted.
pub fn inputs_only(r: &Reference) -> bool {
    matches!(r, Reference::Input(_))
}

fn resolve_str(
    s: &str,
    ctx: &dyn Lookup,
    only: fn(&Reference) -> bool,
) -> Result<Value, ResolveError> {
    if !s.contains('$') {
        return Ok(Value::String(s.to_string()));
    }
    let parts = pieces(s)?;
    let keeps_escapes = parts.iter().any(|p| matches!(p, Piece::Ref(r) if !only(r)));
    if let [Piece::Text(""), Piece::Ref(r), Piece::Text("")] = parts.as_slice() {
        if only(r) {
            return lookup_ref(r, ctx);
        }
    }
    let mut out = String::with_capacity(s.len());
    for p in &parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Literal if keeps_escapes => out.push_str("$${"),
            Piece::Literal => out.push_str("${"),
            Piece::Ref(r) if only(r) => out.push_str(&as_text(&lookup_ref(r, ctx)?)),
            Piece::Ref(r) => out.push_str(&render(r)),
        }
    }
    Ok(Value::String(out))
}

fn render(r: &Reference) -> String {
    match r {
        Reference::Input(n) => format!("${{inputs.{n}}}"),
        Reference::TaskOutput { task, path } if path.is_empty() => {
            format!("${{tasks.{task}.outputs}}")
        }
        Reference::TaskOutput { task, path } => {
            format!("${{tasks.{task}.outputs.{}}}", path.join("."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inputs_and_tasks_are_references() {
        let refs = references("n=${inputs.count} home=${HOME}").unwrap();
        assert_eq!(refs, vec![Reference::Input("count".into())]);
    }
    use serde_json::json;
    use std::collections::HashMap;

    struct Ctx(HashMap<String, Value>, HashMap<String, Value>);
    impl Lookup for Ctx {
        fn input(&self, name: &str) -> Option<&Value> {
            self.0.get(name)
        }
        fn outputs(&self, task: &str) -> Option<&Value> {
            self.1.get(task)
        }
    }

    fn ctx() -> Ctx {
        Ctx(
            HashMap::from([("count".to_string(), json!(100))]),
            HashMap::from([(
                "gen".to_string(),
                json!({"stdout": "ok\n", "list": [1, {"x": "y"}]}),
            )]),
        )
    }

    #[test]
    fn whole_reference_keeps_its_type() {
        assert_eq!(
            resolve(&json!("${inputs.count}"), &ctx(), all).unwrap(),
            json!(100)
        );
    }

    #[test]
    fn embedded_reference_is_written_into_text() {
        let v = resolve(
            &json!("seq 1 ${inputs.count} > n; echo ${HOME}"),
            &ctx(),
            all,
        )
        .unwrap();
        assert_eq!(v, json!("seq 1 100 > n; echo ${HOME}"));
    }

    #[test]
    fn escape_writes_a_literal() {
        assert_eq!(
            resolve(&json!("$${inputs.count}"), &ctx(), all).unwrap(),
            json!("${inputs.count}")
        );
    }

    #[test]
    fn output_paths_index_objects_and_arrays() {
        let v = resolve(&json!("${tasks.gen.outputs.list.1.x}"), &ctx(), all).unwrap();
        assert_eq!(v, json!("y"));
        let e = resolve(&json!("${tasks.gen.outputs.nope}"), &ctx(), all).unwrap_err();
        assert!(e.to_string().contains("no output at `nope`"));
    }

    #[test]
    fn inputs_pass_keeps_task_references_and_escapes() {
        let v = resolve(
            &json!("${inputs.count}:${tasks.gen.outputs.stdout}:$${x}"),
            &ctx(),
            inputs_only,
        )
        .unwrap();
        assert_eq!(v, json!("100:${tasks.gen.outputs.stdout}:$${x}"));
        let v = resolve(&v, &ctx(), all).unwrap();
        assert_eq!(v, json!("100:ok\n:${x}"));
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(references("${tasks.a.result}").is_err());
        assert!(references("${inputs.}").is_err());
        assert!(references("${other.thing} ${ unclosed").unwrap().is_empty());
    }
}
