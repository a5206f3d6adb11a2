//! What the dashboard needs from `nofx serve`, over real HTTP on both stores: the run graph
//! laid out for drawing, cookie sessions with their CSRF rule, and the app itself served at
//! `/ui/` with its caching and security headers.
#![cfg(feature = "cli")]

mod common;

use common::server::Server;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A root, `width` siblings after it and a join after them all.
fn fan(width: usize) -> String {
    let mut s = String::from("name: fan\ntasks:\n  - { id: root, tool: test:echo }\n");
    for i in 0..width {
        s.push_str(&format!(
            "  - {{ id: w{i}, tool: test:echo, depends_on: [root] }}\n"
        ));
    }
    let all: Vec<String> = (0..width).map(|i| format!("w{i}")).collect();
    s.push_str(&format!(
        "  - {{ id: join, tool: test:echo, depends_on: [{}] }}\n",
        all.join(", ")
    ));
    s
}

both_stores! {
    async fn the_graph_of_a_run_is_laid_out_with_wide_layers_grouped_and_statuses_laid_over(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let other = s.key("globex").await;
        let (st, run) = s.post(&key, "/runs", "application/yaml", &fan(60)).await;
        assert_eq!(st, StatusCode::CREATED, "{run}");
        let id = run["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (st, g) = s.get(&key, &format!("/runs/{id}/graph")).await;
        assert_eq!(st, StatusCode::OK, "{g}");
        let nodes = g["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 62);
        assert_eq!(nodes[0], json!({"id": "root", "status": "succeeded", "rank": 0, "order": 0, "group": null, "parent": null}));
        assert_eq!(nodes[61]["id"], "join");
        assert_eq!(nodes[61]["rank"], 2);
        assert!(nodes[1..61].iter().all(|n| n["group"] == 0 && n["rank"] == 1), "{nodes:?}");
        let mut orders: Vec<i64> = nodes[1..61].iter().map(|n| n["order"].as_i64().unwrap()).collect();
        orders.sort_unstable();
        assert_eq!(orders, (0..60).collect::<Vec<i64>>());
        assert_eq!(g["groups"], json!([{"id": 0, "size": 60, "counts": {"succeeded": 60}}]));
        let edges = g["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 120);
        assert!(edges.contains(&json!([0, 1])) && edges.contains(&json!([60, 61])));
        // Read again (laid out already): the same document.
        let (_, again) = s.get(&key, &format!("/runs/{id}/graph")).await;
        assert_eq!(again, g);
        // Another project's run, and no run at all: not found.
        let (st, _) = s.get(&other, &format!("/runs/{id}/graph")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = s.get(&key, "/runs/not-a-run/graph").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        s.stop().await;
    }
}

/// The cookie a response sets, as `name=value`, with its attributes.
fn set_cookie(h: &HeaderMap) -> (String, String) {
    let v = h["set-cookie"].to_str().unwrap().to_string();
    let (pair, attrs) = v.split_once(';').unwrap();
    (pair.to_string(), attrs.to_string())
}

both_stores! {
    async fn a_session_cookie_works_like_a_key_and_its_changes_need_the_csrf_token(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let login = |body: Value| s.http.post(s.url("/session")).json(&body).send();
        // A wrong key says so, and sets nothing.
        let r = login(json!({"key": "nofx_wrong"})).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get("set-cookie").is_none());
        let r = login(json!({"secret": key})).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // The right key: an HttpOnly, SameSite=Strict cookie, and the CSRF token.
        let r = login(json!({"key": key})).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let (cookie, attrs) = set_cookie(r.headers());
        assert!(cookie.starts_with("nofx_session=nofxs_"), "{cookie}");
        assert!(!cookie.contains(&key));
        for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(attrs.contains(a), "{attrs}");
        }
        assert!(!attrs.contains("Secure"), "plain HTTP: {attrs}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["project"], "acme");
        let csrf = body["csrf"].as_str().unwrap().to_string();
        assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
        let with_cookie = |m: reqwest::Method, path: &str| {
            s.http.request(m, s.url(path)).header("cookie", &cookie)
        };
        // Reads need only the cookie.
        let r = with_cookie(reqwest::Method::GET, "/runs").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = with_cookie(reqwest::Method::GET, "/session").send().await.unwrap();
        let me: Value = r.json().await.unwrap();
        assert_eq!((me["project"].as_str(), me["csrf"].as_str()), (Some("acme"), Some(csrf.as_str())));
        // A change without the token, or with a wrong one, is refused; with it, it is made.
        let plan = "name: c\ntasks:\n  - { id: a, tool: test:echo }\n";
        let submit = |token: Option<&str>| {
            let mut r = with_cookie(reqwest::Method::POST, "/runs").header("content-type", "application/yaml").body(plan);
            if let Some(t) = token {
                r = r.header("x-nofx-csrf", t);
            }
            r.send()
        };
        let r = submit(None).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "csrf");
        assert_eq!(submit(Some("0123")).await.unwrap().status(), StatusCode::FORBIDDEN);
        let r = submit(Some(&csrf)).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        // A bearer key needs no token (no browser sends it by itself).
        let (st, _) = s.post(&key, "/runs", "application/yaml", plan).await;
        assert_eq!(st, StatusCode::CREATED);
        // Logging out clears the cookie and ends the session.
        let r = with_cookie(reqwest::Method::DELETE, "/session").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "logging out is a change too");
        let r = with_cookie(reqwest::Method::DELETE, "/session").header("x-nofx-csrf", &csrf).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (cleared, attrs) = set_cookie(r.headers());
        assert_eq!(cleared, "nofx_session=");
        assert!(attrs.contains("Max-Age=0"));
        let r = with_cookie(reqwest::Method::GET, "/runs").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        s.stop().await;
    }
}

both_stores! {
    async fn revoking_a_key_ends_its_sessions(store) {
        let s = Server::start(&store).await;
        let (rec, key) = s.rt.store().create_key("acme", None, &[]).await.unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let r = s.http.post(s.url("/session")).headers(h).json(&json!({"key": key})).send().await.unwrap();
        let (cookie, attrs) = set_cookie(r.headers());
        assert!(attrs.contains("Secure"), "behind TLS: {attrs}");
        let get = || s.http.get(s.url("/runs")).header("cookie", &cookie).send();
        assert_eq!(get().await.unwrap().status(), StatusCode::OK);
        assert!(s.rt.store().revoke_key(&rec.id).await.unwrap());
        assert_eq!(get().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_at_ui_with_its_caching_and_a_strict_csp() {
    let store = common::TestStore::sqlite().await;
    let s = Server::start(&store).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects.get(s.url("/")).send().await.unwrap();
    assert!(r.status().is_redirection());
    assert_eq!(r.headers()["location"], "/ui/");
    let r = s.http.get(s.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let index = r.text().await.unwrap();
    assert!(!index.contains("<script>"), "no inline script: {index}");
    // A page of the app is the app; a missing file is not.
    let page = s.http.get(s.url("/ui/runs/abc")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.text().await.unwrap(), index);
    let r = s.http.get(s.url("/ui/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Its script: hashed, cached for good, compressed on request, revalidated by ETag.
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html names its script");
    assert!(script.starts_with("/ui/assets/"), "{script}");
    let r = s
        .http
        .get(s.url(script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let etag = r.headers()["etag"].clone();
    let r = s
        .http
        .get(s.url(script))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // API answers carry the policy too.
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert!(r.headers().contains_key("content-security-policy"));
    s.stop().await;
}

#[test]
fn serve_without_the_ui_serves_the_api_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = common::serve_with(common::nofx_cmd(dir.path()).args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--no-ui",
    ]));
    let get = |path: &str| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    assert_eq!(get("/ui/"), StatusCode::NOT_FOUND);
    assert_eq!(get("/"), StatusCode::NOT_FOUND);
    assert_eq!(get("/health"), StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
}

both_stores! {
    async fn the_approvals_waiting_in_a_project_are_listed_until_decided_or_their_run_ends(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let other = s.key("globex").await;
        let gated = "name: g\ntasks:\n  - { id: deploy, tool: test:echo, gates: [ { kind: manual, approvers: [alice] } ] }\n";
        let mut ids = Vec::new();
        for k in [&key, &key, &other] {
            let (st, run) = s.post(k, "/runs", "application/yaml", gated).await;
            assert_eq!(st, StatusCode::CREATED, "{run}");
            let id = run["id"].as_str().unwrap().to_string();
            let handle = s.rt.run(id.parse().unwrap()).await.unwrap();
            common::until(std::time::Duration::from_secs(30), || {
                let h = handle.clone();
                async move { h.status().await.unwrap() == nofx::RunStatus::Waiting }
            })
            .await;
            ids.push(id);
        }
        let listed = |v: &Value| -> Vec<String> {
            v["approvals"].as_array().unwrap().iter().map(|a| a["runId"].as_str().unwrap().to_string()).collect()
        };
        let (st, a) = s.get(&key, "/approvals").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(listed(&a), ids[..2].to_vec(), "the key's project only, oldest first");
        assert_eq!(a["approvals"][0]["taskId"], "deploy");
        assert_eq!(a["approvals"][0]["approvers"], json!(["alice"]));
        // Decided, or its run cancelled: no longer waiting on anyone.
        let (st, _) = s.post(&key, &format!("/runs/{}/tasks/deploy/approval", ids[0]), "application/json", r#"{"decision": "approve", "by": "alice"}"#).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _) = s.post(&key, &format!("/runs/{}/cancel", ids[1]), "application/json", "{}").await;
        assert_eq!(st, StatusCode::ACCEPTED);
        s.wait(&ids[1]).await;
        let (_, a) = s.get(&key, "/approvals").await;
        assert_eq!(listed(&a), Vec::<String>::new());
        let (_, a) = s.get(&other, "/approvals").await;
        assert_eq!(listed(&a), ids[2..].to_vec());
        s.stop().await;
    }
}

both_stores! {
    async fn a_task_is_read_with_its_spec_events_and_gate_results(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let other = s.key("globex").await;
        let plan = "name: t\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: abc }, gates: [ { kind: pattern, output: x, regex: \"^[0-9]+$\" } ] }\n  - { id: b, tool: test:echo, depends_on: [a] }\n";
        let (_, run) = s.post(&key, "/runs", "application/yaml", plan).await;
        let id = run["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (st, t) = s.get(&key, &format!("/runs/{id}/tasks/a")).await;
        assert_eq!(st, StatusCode::OK, "{t}");
        assert_eq!(t["task"]["status"], "failed");
        assert_eq!(t["spec"]["inputs"], json!({"x": "abc"}));
        let types: Vec<&str> = t["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(types.contains(&"task.delegated") && types.contains(&"gate.failed"), "{types:?}");
        assert!(t["events"].as_array().unwrap().iter().all(|e| e["taskId"] == "a"));
        let gate = t["events"].as_array().unwrap().iter().find(|e| e["type"] == "gate.failed").unwrap();
        assert_eq!(gate["data"]["kind"], "pattern");
        assert_eq!(t["artifacts"], json!([]));
        // A task skipped when its dependency failed; a task the run does not have.
        let (st, t) = s.get(&key, &format!("/runs/{id}/tasks/b")).await;
        assert_eq!((st, &t["task"]["status"]), (StatusCode::OK, &json!("skipped")));
        let (st, _) = s.get(&key, &format!("/runs/{id}/tasks/nope")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = s.get(&other, &format!("/runs/{id}/tasks/a")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        s.stop().await;
    }
}
