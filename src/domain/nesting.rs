//! Nesting of documents from outside (plans, patches, templates, request bodies) is bounded
//! before they are parsed: a document nested deeper than [`MAX_DEPTH`] is refused in one pass
//! that stops at the first level too deep, so its cost grows with the document's length, never
//! with the square of its depth (which is what parsing a deeply nested YAML flow costs).

use serde::de::DeserializeOwned;

/// Levels of mappings and sequences a document may nest.
pub const MAX_DEPTH: usize = 64;

/// Where a document nests too deep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: nested deeper than {MAX_DEPTH} levels; nofx refuses such documents")]
pub struct TooDeep {
    /// 1-based line of the first level too deep.
    pub line: usize,
}

/// Checks a JSON text (strings skipped, escapes honoured).
///
/// # Errors
/// The line of the first level too deep.
pub fn check_json(text: &str) -> Result<(), TooDeep> {
    let (mut depth, mut line, mut in_str, mut escaped) = (0usize, 1usize, false, false);
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(TooDeep { line });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a YAML text with a streaming parser that stops at the first level too deep (or at
/// a syntax error, which the real parse then reports with its position).
///
/// # Errors
/// The line of the first level too deep.
pub fn check_yaml(text: &str) -> Result<(), TooDeep> {
    use yaml_rust2::parser::{Event, Parser};
    let mut depth = 0usize;
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(x) => x,
            // The scanner stops at 256 levels of flow collections before it says anything.
            Err(e) if e.info() == "recursion limit exceeded" => {
                return Err(TooDeep {
                    line: e.marker().line(),
                })
            }
            Err(_) => break,
        };
        match event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(TooDeep { line: mark.line() });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses YAML (or JSON, which is YAML) after [`check_yaml`].
///
/// # Errors
/// Too deep, or the parser's message.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    check_yaml(text).map_err(|e| e.to_string())?;
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: usize) -> String {
        format!("x: {}{}\n", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn documents_at_the_limit_pass_and_one_level_more_is_refused() {
        // The top-level mapping is one level.
        assert!(check_yaml(&flow(MAX_DEPTH - 1)).is_ok());
        assert_eq!(check_yaml(&flow(MAX_DEPTH)), Err(TooDeep { line: 1 }));
        let json = |n: usize| format!("{{\"x\": {}{}}}", "[".repeat(n), "]".repeat(n));
        assert!(check_json(&json(MAX_DEPTH - 1)).is_ok());
        assert!(check_json(&json(MAX_DEPTH)).is_err());
        assert!(check_json(
            "{\"x\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}"
        )
        .is_ok());
        let block: String = (0..100)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect::<String>()
            + &" ".repeat(100)
            + "v: 1\n";
        assert!(check_yaml(&block).is_err());
        assert!(check_yaml(&format!("{}x\n", "- ".repeat(100))).is_err());
    }
}
