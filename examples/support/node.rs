//! A `nofx serve` node started as a child process, for the fleet examples: its base URL is
//! read from its first lines; the rest of its log is drained (errors and warnings shown).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `nofx serve` with `cmd` (its program, directory and environment set) on an
/// ephemeral port; the child and its base URL.
pub fn start(mut cmd: Command, extra: &[&str]) -> Result<(Child, String), String> {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0", "--grace", "0"])
        .args(["--rate-limit", "100000"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nofx: {e} (build it with cargo build --release)"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .ok_or("the node exited before it listened")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("nofx serving on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    // Keep draining the node's log; errors are shown.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("ERROR") {
                eprintln!("node: {line}");
            }
        }
    });
    Ok((child, base))
}

/// A store of the program's own: with `postgres` (a server URL), a fresh database `name` on
/// that server, with the connection that drops it after; else an SQLite file in `dir`.
pub async fn scratch_store(
    postgres: Option<&str>,
    name: &str,
    dir: &std::path::Path,
) -> Result<(String, Option<(sqlx::PgPool, String)>), String> {
    let Some(url) = postgres else {
        return Ok((format!("sqlite://{}", dir.join("nofx.db").display()), None));
    };
    let db = format!("{name}_{}", std::process::id());
    let base = &url[..url.rfind('/').ok_or("the database URL has no path")?];
    let admin = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    Ok((format!("{base}/{db}"), Some((admin, db))))
}

/// A new API key of `project` with `scopes` (`submit,shell`), made by `nofx keys create` in
/// `dir` on `store`.
pub fn create_key(
    nofx: &str,
    dir: &std::path::Path,
    store: &str,
    project: &str,
    scopes: &str,
) -> Result<String, String> {
    let out = Command::new(nofx)
        .current_dir(dir)
        .env("NOFX_DATABASE_URL", store)
        .args(["keys", "create", "--project", project, "--scope", scopes])
        .output()
        .map_err(|e| e.to_string())?;
    let key = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    if !out.status.success() || key.is_empty() {
        return Err(format!(
            "nofx keys create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(key)
}
