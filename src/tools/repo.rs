//! `repo:analyze`: what a codebase is, without a model — languages and their share of the
//! code, manifests (Cargo.toml, package.json, pyproject.toml, go.mod, …), the build, test and
//! lint commands they imply (`test_command` is the first of `test_commands`, or null: what a
//! `smart_default` names), the top-level tree and the size. It reads a directory of the
//! run's workspace (never outside it: symlinks are not followed), skips what is generated or
//! vendored (`.git`, `target`, `node_modules`, …) and stops after a bounded number of files.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Analyses a directory of the workspace.
pub struct RepoAnalyze;

/// Most files looked at.
const MAX_FILES: usize = 100_000;
/// Deepest directory looked into.
const MAX_DEPTH: usize = 24;
/// Most bytes of a manifest read.
const MAX_MANIFEST: u64 = 256 * 1024;

const SKIPPED: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    "dist",
    "build",
    ".next",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".gradle",
    ".idea",
    ".cache",
];

const MANIFESTS: &[&str] = &[
    "Cargo.toml",
    "package.json",
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "Gemfile",
    "composer.json",
    "CMakeLists.txt",
    "Makefile",
    "justfile",
    "mix.exs",
    "deno.json",
    "Package.swift",
];

fn language(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "ts" | "tsx" | "mts" | "cts" => "typescript",
        "js" | "jsx" | "mjs" | "cjs" => "javascript",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "rb" => "ruby",
        "php" => "php",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "c++",
        "cs" => "c#",
        "swift" => "swift",
        "scala" => "scala",
        "ex" | "exs" => "elixir",
        "erl" => "erlang",
        "hs" => "haskell",
        "ml" | "mli" => "ocaml",
        "clj" | "cljs" => "clojure",
        "dart" => "dart",
        "lua" => "lua",
        "sh" | "bash" => "shell",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" | "scss" | "sass" => "css",
        "vue" => "vue",
        "svelte" => "svelte",
        "zig" => "zig",
        _ => return None,
    })
}

#[derive(Default)]
struct Walk {
    files: usize,
    bytes: u64,
    languages: BTreeMap<&'static str, (usize, u64)>,
    manifests: Vec<String>,
    truncated: bool,
}

fn walk(root: &Path) -> Walk {
    let mut w = Walk::default();
    let mut dirs = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            // The entry itself, never what a symlink points at.
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().to_string();
            if kind.is_dir() {
                if depth + 1 < MAX_DEPTH && !SKIPPED.contains(&name.as_str()) {
                    dirs.push((e.path(), depth + 1));
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            if w.files >= MAX_FILES {
                w.truncated = true;
                return w;
            }
            w.files += 1;
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            w.bytes += size;
            if let Some(lang) = language(&e.path()) {
                let entry = w.languages.entry(lang).or_default();
                entry.0 += 1;
                entry.1 += size;
            }
            if MANIFESTS.contains(&name.as_str()) || name.ends_with(".csproj") {
                if let Ok(rel) = e.path().strip_prefix(root) {
                    w.manifests.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    w.manifests
        .sort_by_key(|m| (m.matches('/').count(), m.clone()));
    w
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Build, test and lint commands the manifests at the top of `root` imply.
fn commands(root: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut build, mut test, mut lint) = (Vec::new(), Vec::new(), Vec::new());
    let has =
        |n: &str| std::fs::symlink_metadata(root.join(n)).is_ok_and(|m| m.is_file() || m.is_dir());
    if has("Cargo.toml") {
        build.push("cargo build".into());
        test.push("cargo test".into());
        lint.push("cargo clippy --all-targets -- -D warnings".into());
        lint.push("cargo fmt --check".into());
    }
    if let Some(text) = read_small(&root.join("package.json")) {
        let runner = if has("pnpm-lock.yaml") {
            "pnpm"
        } else if has("yarn.lock") {
            "yarn"
        } else {
            "npm"
        };
        let scripts = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("scripts").cloned())
            .unwrap_or_default();
        let script = |n: &str| scripts.get(n).is_some();
        if script("build") {
            build.push(format!("{runner} run build"));
        }
        if script("test") {
            test.push(format!("{runner} test"));
        }
        if script("lint") {
            lint.push(format!("{runner} run lint"));
        }
    }
    if let Some(text) = read_small(&root.join("pyproject.toml")) {
        if text.contains("[build-system]") {
            build.push("python -m build".into());
        }
        if text.contains("pytest") || has("tests") {
            test.push("pytest".into());
        }
        if text.contains("ruff") {
            lint.push("ruff check .".into());
        }
        if text.contains("mypy") {
            lint.push("mypy .".into());
        }
    }
    if has("go.mod") {
        build.push("go build ./...".into());
        test.push("go test ./...".into());
        lint.push("go vet ./...".into());
    }
    if has("pom.xml") {
        build.push("mvn package".into());
        test.push("mvn test".into());
    }
    if has("build.gradle") || has("build.gradle.kts") {
        let g = if has("gradlew") {
            "./gradlew"
        } else {
            "gradle"
        };
        build.push(format!("{g} build"));
        test.push(format!("{g} test"));
    }
    for (file, tool) in [("Makefile", "make"), ("justfile", "just")] {
        if let Some(text) = read_small(&root.join(file)) {
            for line in text.lines() {
                let Some(target) = line.split(':').next().filter(|_| line.contains(':')) else {
                    continue;
                };
                let target = target.trim();
                let cmd = format!("{tool} {target}");
                match target {
                    "build" | "all" if !build.contains(&cmd) => build.push(cmd),
                    "test" | "check" if !test.contains(&cmd) => test.push(cmd),
                    "lint" | "fmt" if !lint.contains(&cmd) => lint.push(cmd),
                    _ => {}
                }
            }
        }
    }
    (build, test, lint)
}

/// The top-level entries (directories end with `/`), skipped ones left out.
fn tree(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let kind = e.file_type().ok()?;
            if SKIPPED.contains(&name.as_str()) {
                return None;
            }
            Some(if kind.is_dir() {
                format!("{name}/")
            } else {
                name
            })
        })
        .collect();
    out.sort();
    out.truncate(200);
    out
}

/// The analysis of `root` as the tool's outputs.
pub(crate) fn analyze(root: &Path, shown: &str) -> serde_json::Map<String, Value> {
    let w = walk(root);
    let code: u64 = w.languages.values().map(|(_, b)| b).sum();
    let mut langs: Vec<(&str, usize, u64)> =
        w.languages.iter().map(|(k, (f, b))| (*k, *f, *b)).collect();
    langs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let share = |b: u64| {
        if code == 0 {
            0.0
        } else {
            (b as f64 * 1000.0 / code as f64).round() / 1000.0
        }
    };
    let (build, test, lint) = commands(root);
    let out = json!({
        "path": shown,
        "language": langs.first().map(|l| l.0),
        "languages": langs.iter().map(|l| l.0).collect::<Vec<_>>(),
        "language_shares": langs.iter().map(|(name, files, bytes)| json!({
            "name": name, "files": files, "bytes": bytes, "share": share(*bytes)
        })).collect::<Vec<_>>(),
        "manifests": w.manifests,
        "build_command": build.first(),
        "test_command": test.first(),
        "lint_command": lint.first(),
        "build_commands": build,
        "test_commands": test,
        "lint_commands": lint,
        "tree": tree(root),
        "files": w.files,
        "bytes": w.bytes,
        "truncated": w.truncated,
    });
    match out {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

impl Tool for RepoAnalyze {
    fn name(&self) -> &str {
        "repo:analyze"
    }

    fn description(&self) -> &str {
        "Analyses a directory of the workspace without a model: languages and their share, manifests, build/test/lint commands, top-level tree, size."
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "a directory of the workspace (default: the workspace)"}
            },
            "additionalProperties": false
        })
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        match inputs.get("path").and_then(Value::as_str) {
            Some(p) if p != "." && !p.is_empty() => super::workspace::relative(p, "path")
                .err()
                .map(|e| vec![("/path".to_string(), e)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let p = ctx
                .inputs
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_string();
            let root = super::workspace::existing_dir(&ctx.workspace, &p, "path")
                .map_err(ToolError::InvalidInput)?;
            let outputs = tokio::task::spawn_blocking(move || analyze(&root, &p))
                .await
                .map_err(|e| ToolError::Io(e.to_string()))?;
            Ok(ToolOutput {
                outputs,
                artifacts: Vec::new(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_described_by_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("web/node_modules/x")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}\n".repeat(20)).unwrap();
        std::fs::write(root.join("src/tool.py"), "print(1)\n").unwrap();
        std::fs::write(root.join("target/big.rs"), "x".repeat(10_000)).unwrap();
        std::fs::write(
            root.join("web/package.json"),
            r#"{"scripts": {"test": "vitest"}}"#,
        )
        .unwrap();
        std::fs::write(root.join("web/node_modules/x/index.js"), "x".repeat(10_000)).unwrap();
        std::fs::write(
            root.join("Makefile"),
            "build:\n\tcargo build\nlint:\n\tcargo clippy\n",
        )
        .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let a = analyze(root, ".");
        assert_eq!(a["language"], "rust");
        assert_eq!(a["languages"], json!(["rust", "python"]));
        assert_eq!(
            a["manifests"],
            json!(["Cargo.toml", "Makefile", "web/package.json"])
        );
        assert_eq!(a["test_commands"], json!(["cargo test"]));
        assert_eq!(a["test_command"], "cargo test");
        assert_eq!(a["build_commands"], json!(["cargo build", "make build"]));
        assert!(a["lint_commands"]
            .as_array()
            .unwrap()
            .contains(&json!("make lint")));
        assert_eq!(
            a["files"], 5,
            "skipped directories and symlinks are not read: {a:?}"
        );
        assert_eq!(
            a["tree"],
            json!(["Cargo.toml", "Makefile", "etc", "src/", "web/"])
        );
        let shares = a["language_shares"].as_array().unwrap();
        assert!(shares[0]["share"].as_f64().unwrap() > 0.9);
    }
}
