//! A provider key never appears in anything a run leaves behind — events, task errors, the
//! API's answers, `/metrics`, the server's log, the store's files and the data directory —
//! even when the provider (or a proxy in front of it) echoes the key in its error.
#![cfg(feature = "cli")]

mod common;

use common::llm::{openai_text, reply, server};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-nofx-test-SECRET-4f1c2a9e77";

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            found.extend(files_holding(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            found.push(p);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_never_appears_in_what_a_run_leaves_behind() {
    // The first call is refused with an error echoing the whole key (the route may fall back
    // to another model for it); the others succeed.
    let (base, script) = server(
        "/v1/chat/completions",
        vec![
            reply(
                401,
                json!({"error": {"message": format!("Incorrect API key provided: {KEY}. Check the key sent as `Authorization: Bearer {KEY}`."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ),
            openai_text("a fine answer", 20, 5),
            openai_text("a fine answer", 20, 5),
            openai_text("a fine answer", 20, 5),
        ],
    )
    .await;
    let dir = tempfile::TempDir::new().unwrap();
    let d = dir.path().to_path_buf();
    let created = common::nofx_out(&d, &["keys", "create", "--project", "acme"]);
    let api_key = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let (mut node, url, log) = tokio::task::spawn_blocking({
        let d = d.clone();
        let base = base.clone();
        move || {
            common::serve_logged(
                common::nofx_cmd(&d)
                    .env("OPENAI_API_KEY", KEY)
                    .env("OPENAI_BASE_URL", format!("{base}/v1"))
                    .args([
                        "--log-level",
                        "debug",
                        "serve",
                        "--bind",
                        "127.0.0.1:0",
                        "--grace",
                        "0",
                    ]),
            )
        }
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, url, api_key) = (http.clone(), url.clone(), api_key.clone());
        async move {
            let r = http
                .get(format!("{url}{path}"))
                .bearer_auth(&api_key)
                .send();
            r.await.unwrap().text().await.unwrap()
        }
    };
    let plan = "name: ask\ntasks:\n  - { id: t, tool: llm:generate, inputs: { prompt: hello } }\n";
    let mut seen = String::new();
    for _ in 0..2 {
        let created: Value = http
            .post(format!("{url}/runs"))
            .bearer_auth(&api_key)
            .header("content-type", "application/yaml")
            .body(plan)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        common::until(Duration::from_secs(60), || async {
            let r: Value = serde_json::from_str(&get(format!("/runs/{id}")).await).unwrap();
            matches!(r["status"].as_str(), Some("succeeded" | "failed"))
        })
        .await;
        for path in [format!("/runs/{id}"), format!("/runs/{id}/events")] {
            seen.push_str(&get(path).await);
        }
    }
    // The key reached the provider, as it must.
    let asked = script.seen();
    assert!(asked.len() >= 2);
    assert_eq!(asked[0].headers["authorization"], format!("Bearer {KEY}"));
    // The refusal is told, without the key.
    assert!(
        seen.contains("Incorrect API key provided: [redacted]"),
        "{seen}"
    );
    assert!(seen.contains("a fine answer"), "{seen}");
    for path in ["/metrics", "/usage?startDate=2020-01-01&endDate=2100-01-01"] {
        seen.push_str(&get(path.to_string()).await);
    }
    assert!(!seen.contains(KEY), "the API showed the key");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    node.wait().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(log.contains("model"), "the log is there: {log}");
    assert!(!log.contains(KEY), "the log showed the key");
    let leaked = files_holding(&d, KEY.as_bytes());
    assert!(leaked.is_empty(), "files holding the key: {leaked:?}");
}
