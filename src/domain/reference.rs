//! References inside task inputs: `${inputs.NAME}`, `${tasks.ID.outputs.PATH}` (a
//! subtask's ID is dotted, `PARENT.CHILD`) and, inside a `for_each` template, `${item.NAME}`.
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
    /// `${item.NAME.PATH}`: the item of a `for_each` subtask.
    Item {
        /// The item's name (`as`).
        name: String,
        /// Dotted path into the item.
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
        let parts: Vec<&str> = rest.split('.').collect();
        // The task id runs up to the first `outputs` after at least one segment.
        let Some(at) = parts
            .iter()
            .skip(1)
            .position(|p| *p == "outputs")
            .map(|p| p + 1)
        else {
            return Err(bad("expected `${tasks.ID.outputs.PATH}`"));
        };
        if parts[..at].iter().any(|p| p.is_empty()) {
            return Err(bad("expected `${tasks.ID.outputs.PATH}`"));
        }
        let path: Vec<String> = parts[at + 1..].iter().map(|p| p.to_string()).collect();
        if path.iter().any(String::is_empty) {
            return Err(bad("the output path has an empty segment"));
        }
        return Ok(Some(Reference::TaskOutput {
            task: parts[..at].join("."),
            path,
        }));
    }
    if let Some(rest) = inner.strip_prefix("item.") {
        let mut parts = rest.split('.');
        let name = parts.next().unwrap_or_default();
        let path: Vec<String> = parts.map(str::to_string).collect();
        if name.is_empty() || path.iter().any(String::is_empty) {
            return Err(bad("expected `${item.NAME}` or `${item.NAME.PATH}`"));
        }
        return Ok(Some(Reference::Item {
            name: name.to_string(),
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
    /// `${item…}` outside a `for_each` subtask, or naming another item.
    #[error("`${{item.{0}…}}` names no item here")]
    UnknownItem(String),
    /// The item has nothing at that path.
    #[error("`${{item.{name}.{path}}}`: the item has nothing at `{path}`")]
    MissingItemPath {
        /// The item's name.
        name: String,
        /// The dotted path.
        path: String,
    },
}

/// Looks up what references point at.
pub trait Lookup {
    /// The value of a plan input.
    fn input(&self, name: &str) -> Option<&Value>;
    /// The outputs of a succeeded task.
    fn outputs(&self, task: &str) -> Option<&Value>;
    /// The item called `name` (inside a `for_each` subtask).
    fn item(&self, _name: &str) -> Option<&Value> {
        None
    }
}

fn walk_path<'v>(mut cur: &'v Value, path: &[String]) -> Option<&'v Value> {
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }?;
    }
    Some(cur)
}

fn lookup_ref(r: &Reference, ctx: &dyn Lookup) -> Result<Value, ResolveError> {
    match r {
        Reference::Input(name) => ctx
            .input(name)
            .cloned()
            .ok_or_else(|| ResolveError::UnknownInput(name.clone())),
        Reference::TaskOutput { task, path } => {
            let outputs = ctx
                .outputs(task)
                .ok_or_else(|| ResolveError::NoOutputs(task.clone()))?;
            walk_path(outputs, path)
                .cloned()
                .ok_or_else(|| ResolveError::MissingOutput {
                    task: task.clone(),
                    path: path.join("."),
                })
        }
        Reference::Item { name, path } => {
            let item = ctx
                .item(name)
                .ok_or_else(|| ResolveError::UnknownItem(name.clone()))?;
            walk_path(item, path)
                .cloned()
                .ok_or_else(|| ResolveError::MissingItemPath {
                    name: name.clone(),
                    path: path.join("."),
                })
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

/// Accepts only `${item…}`: the pass that makes a `for_each` subtask from its template.
pub fn items_only(r: &Reference) -> bool {
    matches!(r, Reference::Item { .. })
}

/// `value` with every `${` in its strings written `$${`: data put where references are read
/// (an item of a `for_each`) stays data.
pub fn escaped(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains("${") => Value::String(s.replace("${", "$${")),
        Value::Array(items) => Value::Array(items.into_iter().map(escaped).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, escaped(v))).collect())
        }
        other => other,
    }
}

/// `value` with the task id of every `${tasks.ID…}` replaced by what `rename` gives (kept
/// when it gives nothing); everything else, escapes included, as written.
///
/// # Errors
/// The first malformed reference.
pub fn rename_tasks(
    value: &Value,
    rename: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, BadReference> {
    Ok(match value {
        Value::String(s) if s.contains('$') => {
            let mut out = String::with_capacity(s.len() + 16);
            for p in pieces(s)? {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Literal => out.push_str("$${"),
                    Piece::Ref(Reference::TaskOutput { task, path }) => {
                        let task = rename(&task).unwrap_or(task);
                        out.push_str(&render(&Reference::TaskOutput { task, path }));
                    }
                    Piece::Ref(r) => out.push_str(&render(&r)),
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| rename_tasks(v, rename))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), rename_tasks(v, rename)?)))
                .collect::<Result<_, BadReference>>()?,
        ),
        other => other.clone(),
    })
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
        Reference::Item { name, path } if path.is_empty() => format!("${{item.{name}}}"),
        Reference::Item { name, path } => format!("${{item.{name}.{}}}", path.join(".")),
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
    fn subtask_ids_are_dotted_and_items_have_paths() {
        let refs = references("${tasks.p.c.outputs.x.0} ${item.file.name}").unwrap();
        assert_eq!(
            refs,
            vec![
                Reference::TaskOutput {
                    task: "p.c".into(),
                    path: vec!["x".into(), "0".into()]
                },
                Reference::Item {
                    name: "file".into(),
                    path: vec!["name".into()]
                }
            ]
        );
        assert!(references("${tasks.outputs.outputs}").is_ok());
        assert!(references("${tasks.a..b.outputs}").is_err());
        let renamed = rename_tasks(
            &json!({"a": ["${tasks.b.outputs.x}-$${k} ${inputs.n}"]}),
            &|t| (t == "b").then(|| "p.b".to_string()),
        )
        .unwrap();
        assert_eq!(
            renamed,
            json!({"a": ["${tasks.p.b.outputs.x}-$${k} ${inputs.n}"]})
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(references("${tasks.a.result}").is_err());
        assert!(references("${inputs.}").is_err());
        assert!(references("${other.thing} ${ unclosed").unwrap().is_empty());
    }
}
