//! The HTTP API over real HTTP against a server on an ephemeral port, on SQLite and Postgres:
//! keys and projects, runs (submit, read, list, cancel, events), JSON errors, correlation ids.
#![cfg(feature = "server")]

mod common;

use common::server::Server;
use common::TestStore;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PLAN: &str = "name: hi\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n  - { id: b, tool: test:echo, inputs: { y: \"${tasks.a.outputs.x}\" } }\n";

both_stores! {
    async fn a_key_submits_reads_and_lists_its_projects_runs(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        // YAML body, with the caller's correlation id.
        let r = s
            .http
            .post(s.url("/runs"))
            .bearer_auth(&key)
            .header("content-type", "application/yaml")
            .header("x-correlation-id", "order-4711")
            .body(PLAN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-correlation-id"], "order-4711");
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["correlationId"], "order-4711");
        assert_eq!(created["project"], "acme");
        assert!(created.get("workspace").is_none());
        s.wait(&id).await;

        let (st, run) = s.get(&key, &format!("/runs/{id}")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["tasks"][1]["outputs"], json!({"y": 1}));
        let (_, evs) = s.get(&key, &format!("/runs/{id}/events")).await;
        let evs = evs["events"].as_array().unwrap().clone();
        assert_eq!(run["eventSeq"], evs.last().unwrap()["seq"]);
        assert!(evs.iter().all(|e| e["correlationId"] == "order-4711"));
        let (_, after) = s.get(&key, &format!("/runs/{id}/events?after=3")).await;
        let seqs: Vec<i64> = after["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (4..=evs.len() as i64).collect::<Vec<_>>());

        // JSON body with inputs; then list with a cursor, newest first.
        let body = json!({"plan": {"name": "in", "inputs": {"n": {"type": "integer"}}, "tasks": [{"id": "a", "tool": "test:echo", "inputs": {"n": "${inputs.n}"}}]}, "inputs": {"n": 7}});
        let (st, second) = s.post(&key, "/runs", "application/json", &body.to_string()).await;
        assert_eq!(st, StatusCode::CREATED, "{second}");
        let (_, third) = s.post(&key, "/runs", "application/json", &json!({"name": "j", "tasks": [{"id": "a", "tool": "test:echo"}]}).to_string()).await;
        for r in [&second, &third] {
            s.wait(r["id"].as_str().unwrap()).await;
        }
        let (_, page1) = s.get(&key, "/runs?limit=2").await;
        let ids: Vec<&str> = page1["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![third["id"].as_str().unwrap(), second["id"].as_str().unwrap()]);
        let cursor = page1["nextCursor"].as_str().unwrap();
        let (_, page2) = s.get(&key, &format!("/runs?limit=2&cursor={cursor}")).await;
        assert_eq!(page2["runs"].as_array().unwrap().len(), 1);
        assert_eq!(page2["runs"][0]["id"], id.as_str());
        assert!(page2["nextCursor"].is_null());
        let (_, ok) = s.get(&key, "/runs?status=succeeded").await;
        assert_eq!(ok["runs"].as_array().unwrap().len(), 3);
        let (st, bad) = s.get(&key, "/runs?status=weird").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(bad["error"]["message"].as_str().unwrap().contains("`status`"));

        // Another project's key sees none of it: 404, not 403.
        let other = s.key("globex").await;
        for path in [format!("/runs/{id}"), format!("/runs/{id}/events")] {
            let (st, e) = s.get(&other, &path).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(e["error"]["code"], "not_found");
        }
        let (st, _) = s.post(&other, &format!("/runs/{id}/cancel"), "application/json", "").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (_, none) = s.get(&other, "/runs").await;
        assert_eq!(none["runs"], json!([]));
        s.stop().await;
    }
}

both_stores! {
    async fn every_error_is_json_and_a_bad_request_writes_nothing(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        // No key, an unknown key, a revoked key: 401.
        let r = s.http.get(s.url("/runs")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("x-correlation-id"));
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unauthorized");
        let (st, _) = s.get("nofx_not-a-key", "/runs").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (rec, revoked) = s.rt.store().create_key("acme", Some("old"), &[]).await.unwrap();
        assert!(s.rt.store().revoke_key(&rec.id).await.unwrap());
        let (st, _) = s.get(&revoked, "/runs").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        // /health needs no key.
        let r = s.http.get(s.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        // An invalid plan: 422 listing every problem.
        let bad = json!({"name": "bad", "tasks": [
            {"id": "a", "tool": "nope"},
            {"id": "b", "tool": "test:echo", "depends_on": ["ghost"]}
        ]});
        let (st, e) = s.post(&key, "/runs", "application/json", &bad.to_string()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e["error"]["code"], "invalid_plan");
        let problems = e["error"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 2, "{e}");
        assert!(problems[0]["message"].as_str().unwrap().contains("unknown tool `nope`"));
        assert_eq!((problems[0]["task"].as_str(), problems[0]["field"].as_str()), (Some("a"), Some("tool")));
        assert!(problems[1]["message"].as_str().unwrap().contains("ghost"));
        assert_eq!((problems[1]["task"].as_str(), problems[1]["field"].as_str()), (Some("b"), Some("depends_on")));
        // Not a plan, empty, too large, a malformed query.
        let (st, e) = s.post(&key, "/runs", "application/yaml", "tasks: [").await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        let (st, _) = s.post(&key, "/runs", "application/json", "").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let huge = format!("name: x\ntasks: []\n#{}", "x".repeat(3 * 1024 * 1024));
        // A server may close the connection after refusing a body it did not read, so this
        // request gets a connection of its own.
        let r = reqwest::Client::new()
            .post(s.url("/runs"))
            .bearer_auth(&key)
            .header("content-type", "application/yaml")
            .body(huge)
            .send()
            .await
            .unwrap();
        let (st, e): (StatusCode, Value) = (r.status(), r.json().await.unwrap_or(Value::Null));
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e["error"]["code"], "body_too_large");
        let (st, e) = s.get(&key, "/runs?limit=lots").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["code"], "bad_request");
        let (st, e) = s.get(&key, "/nowhere").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["code"], "not_found");
        // Nothing was stored by any of these.
        let (_, list) = s.get(&key, "/runs").await;
        assert_eq!(list["runs"], json!([]));
        s.stop().await;
    }
}

both_stores! {
    async fn a_run_can_be_cancelled_over_http(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let plan = "name: slow\ntasks:\n  - { id: nap, tool: shell, inputs: { argv: [sleep, \"30\"] } }\n";
        let (st, run) = s.post(&key, "/runs", "application/yaml", plan).await;
        assert_eq!(st, StatusCode::CREATED, "{run}");
        let id = run["id"].as_str().unwrap().to_string();
        let (st, c) = s.post(&key, &format!("/runs/{id}/cancel"), "application/json", "").await;
        assert_eq!(st, StatusCode::ACCEPTED, "{c}");
        s.wait(&id).await;
        let (_, run) = s.get(&key, &format!("/runs/{id}")).await;
        assert_eq!(run["status"], "cancelled");
        let (st, e) = s.post(&key, &format!("/runs/{id}/cancel"), "application/json", "").await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert_eq!(e["error"]["code"], "run_ended");
        s.stop().await;
    }
}

/// Reads SSE frames (id, event) from `resp` until `stop_after` frames with an id, or the end.
async fn frames(resp: reqwest::Response, stop_after: Option<usize>) -> Vec<(Option<i64>, String)> {
    use eventsource_stream::Eventsource;
    let mut out = Vec::new();
    let mut es = resp.bytes_stream().eventsource();
    while let Some(ev) = es.next().await {
        let ev = ev.unwrap();
        let id = ev.id.parse::<i64>().ok();
        out.push((id, ev.event));
        if stop_after.is_some_and(|n| out.iter().filter(|(i, _)| i.is_some()).count() >= n) {
            break;
        }
    }
    out
}

both_stores! {
    async fn a_run_stream_resumed_with_last_event_id_has_no_gap_and_no_repeat(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let plan = "name: steps\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [sleep, \"0.2\"] } }\n  - { id: b, tool: shell, inputs: { argv: [sleep, \"0.2\"] }, depends_on: [a] }\n  - { id: c, tool: shell, inputs: { argv: [sleep, \"0.2\"] }, depends_on: [b] }\n";
        let (_, run) = s.post(&key, "/runs", "application/yaml", plan).await;
        let id = run["id"].as_str().unwrap().to_string();
        let open = |last: Option<i64>| {
            let mut r = s.http.get(s.url(&format!("/runs/{id}/stream"))).bearer_auth(&key);
            if let Some(l) = last {
                r = r.header("last-event-id", l.to_string());
            }
            r.send()
        };
        let first = open(None).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert!(first.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        // Read five events, then drop the connection mid-run.
        let part1 = frames(first, Some(5)).await;
        let last = part1.iter().filter_map(|(i, _)| *i).max().unwrap();
        // Resume: the rest, up to the end of the run, when the server closes the stream.
        let part2 = frames(open(Some(last)).await.unwrap(), None).await;
        let seqs: Vec<i64> = part1.iter().chain(part2.iter()).filter_map(|(i, _)| *i).collect();
        let stored = common::events(&s.rt, id.parse().unwrap()).await;
        assert_eq!(seqs, stored.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(part2.last().unwrap().1, "run.succeeded");
        // A stream opened after the end replays from the given point and closes.
        let tail = frames(open(Some(last)).await.unwrap(), None).await;
        assert_eq!(tail.len(), part2.len());
        let (st, e) = s.get(&key, &format!("/runs/{id}/stream?after=x")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
        s.stop().await;
    }
}

both_stores! {
    async fn agents_readiness_and_usage_analytics_of_the_keys_project(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let r = s.http.get(s.url("/ready")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (st, a) = s.get(&key, "/agents").await;
        assert_eq!(st, StatusCode::OK);
        let ids: Vec<&str> = a["agents"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["lead", "builder", "worker"]);
        assert!(a["agents"][0]["maxConcurrency"].as_u64().unwrap() >= 1);
        assert_eq!(a["queued"], 0);

        let row = |project: &str, at: &str, cost: i64| nofx::store::ModelCallRow {
            run_id: Some(format!("run-{project}")),
            task_id: None,
            tool: Some("llm:generate".into()),
            agent: None,
            model: "gpt-mid".into(),
            provider: "openai".into(),
            input_tokens: 100,
            output_tokens: 10,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            estimated_cost_micro_usd: cost,
            cost_micro_usd: cost,
            duration_ms: 40,
            success: true,
            error_type: None,
            correlation_id: "corr_1_00000000".into(),
            at: chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis(),
            project: Some(project.into()),
        };
        common::record_model_calls(&store.url, &[
            row("acme", "2026-11-02T10:00:00Z", 1_500),
            row("acme", "2026-11-03T10:00:00Z", 2_500),
            row("globex", "2026-11-02T11:00:00Z", 9_000_000),
        ]).await;
        let (st, u) = s.get(&key, "/analytics/usage?startDate=2026-11-01&endDate=2026-11-05&groupBy=day").await;
        assert_eq!(st, StatusCode::OK, "{u}");
        assert_eq!(u["usage"].as_array().unwrap().len(), 4);
        assert_eq!(u["usage"][1]["bucket"], "2026-11-02T00:00:00Z");
        assert_eq!(u["usage"][1]["calls"], 1);
        assert_eq!(u["usage"][0]["cost"], json!(0.0));
        assert_eq!(u["summary"]["totalCalls"], 2, "only the key's project: {u}");
        assert_eq!(u["summary"]["totalCost"], json!(0.004));
        for (query, param) in [
            ("startDate=yesterday", "startDate"),
            ("endDate=2026-13-01", "endDate"),
            ("groupBy=month", "groupBy"),
        ] {
            let (st, e) = s.get(&key, &format!("/analytics/usage?{query}")).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(e["error"]["parameter"], param);
        }
        let (_, empty) = s.get(&key, "/analytics/usage?startDate=2020-01-01&endDate=2020-01-02&groupBy=hour").await;
        assert_eq!(empty["summary"]["averageDuration"], json!(0.0));
        assert_eq!(empty["usage"].as_array().unwrap().len(), 24);
        s.stop().await;
    }
}

both_stores! {
    async fn artifacts_are_listed_and_downloaded_with_type_and_hash(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let plan = "name: art\ntasks:\n  - { id: w, tool: shell, inputs: { argv: [sh, -c, \"printf '# hi' > report.md\"], artifacts: [report.md] } }\n";
        let (_, run) = s.post(&key, "/runs", "application/yaml", plan).await;
        let id = run["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (st, list) = s.get(&key, &format!("/runs/{id}/artifacts")).await;
        assert_eq!(st, StatusCode::OK);
        let names: Vec<&str> = list["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"report.md"), "{list}");
        let r = s.http.get(s.url(&format!("/runs/{id}/artifacts/report.md"))).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/markdown; charset=utf-8");
        let sha = r.headers()["x-content-sha256"].to_str().unwrap().to_string();
        assert_eq!(r.text().await.unwrap(), "# hi");
        assert_eq!(sha, nofx::store::key_hash("# hi"), "sha256 of the content");
        let (st, e) = s.get(&key, &format!("/runs/{id}/artifacts/nope.txt")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["code"], "not_found");
        let other = s.key("globex").await;
        let (st, _) = s.get(&other, &format!("/runs/{id}/artifacts/report.md")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_refuses_commands_its_policy_does_not_allow_and_limits_each_keys_rate() {
    let store = TestStore::sqlite().await;
    let rt = store
        .builder()
        .command_policy(nofx::tools::CommandPolicy::deny_all())
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let opts = nofx::api::ApiOptions {
        requests_per_second: std::num::NonZeroU32::new(2).unwrap(),
        ..Default::default()
    };
    tokio::spawn(nofx::api::serve(
        rt.clone(),
        opts,
        listener,
        std::future::pending(),
    ));
    let key = rt
        .store()
        .create_key("acme", None, &nofx::store::Scope::ALL)
        .await
        .unwrap()
        .1;
    let plan =
        "name: p\ntasks:\n  - { id: rm, tool: shell, inputs: { argv: [rm, -rf, /tmp/x] } }\n";
    let r = reqwest::Client::new()
        .post(format!("{base}/runs"))
        .bearer_auth(&key)
        .header("content-type", "application/yaml")
        .body(plan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"]["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("task `rm`") && msg.contains("rm"), "{msg}");
    // Two requests a second per key: the third in a burst is refused with Retry-After.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/runs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("{base}/runs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limited");
    rt.shutdown().await;
}

both_stores! {
    async fn a_retry_with_the_same_idempotency_key_gets_the_same_run(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let post = |idem: &'static str, body: &'static str| {
            s.http
                .post(s.url("/runs"))
                .bearer_auth(&key)
                .header("content-type", "application/yaml")
                .header("idempotency-key", idem)
                .body(body)
                .send()
        };
        // Two at once, then a late retry: one run.
        let (a, b) = tokio::join!(post("order-1", PLAN), post("order-1", PLAN));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.status(), b.status()), (StatusCode::CREATED, StatusCode::CREATED));
        let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
        assert_eq!(a["id"], b["id"]);
        let c: Value = post("order-1", PLAN).await.unwrap().json().await.unwrap();
        assert_eq!(a["id"], c["id"]);
        s.wait(a["id"].as_str().unwrap()).await;
        let (_, list) = s.get(&key, "/runs").await;
        assert_eq!(list["runs"].as_array().unwrap().len(), 1);
        // The same key with another body is refused.
        let r = post("order-1", "name: other\ntasks:\n  - { id: a, tool: test:echo }\n").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "idempotency_key_reused");
        // A request that fails stores nothing and leaves its key free.
        let r = post("order-2", "name: bad\ntasks:\n  - { id: a, tool: nope }\n").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = post("order-2", PLAN).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        // Keys are per project.
        let other = s.key("globex").await;
        let r = s.http.post(s.url("/runs")).bearer_auth(&other).header("content-type", "application/yaml").header("idempotency-key", "order-1").body(PLAN).send().await.unwrap();
        let o: Value = r.json().await.unwrap();
        assert_ne!(o["id"], a["id"]);
        s.stop().await;
    }
}

both_stores! {
    async fn metrics_are_prometheus_text_with_runs_tasks_durations_agents_and_requests(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let (_, run) = s.post(&key, "/runs", "application/yaml", PLAN).await;
        s.wait(run["id"].as_str().unwrap()).await;
        let (st, _) = s.get(&key, "/runs/not-a-run").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let r = s.http.get(s.url("/metrics")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        for want in [
            "nofx_runs{status=\"succeeded\"} 1",
            "nofx_tasks{status=\"succeeded\"} 2",
            "# TYPE nofx_task_duration_seconds histogram",
            "nofx_task_duration_seconds_count 2",
            "nofx_task_duration_seconds_bucket{le=\"+Inf\"} 2",
            "nofx_queue_depth 0",
            "nofx_agent_in_flight{agent=\"worker\"} 0",
            "nofx_http_requests_total{route=\"POST /runs\",status=\"201\"} 1",
            "nofx_http_requests_total{route=\"GET /runs/{id}\",status=\"404\"} 1",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
        let r = s.http.get(s.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        s.stop().await;
    }
}

both_stores! {
    async fn templates_are_listed_created_and_instantiated_per_project(store) {
        let s = Server::start(&store).await;
        assert_eq!(s.rt.load_templates(std::path::Path::new("templates")).await.unwrap(), 3);
        // Loading again changes nothing.
        assert_eq!(s.rt.load_templates(std::path::Path::new("templates")).await.unwrap(), 0);
        let key = s.key("acme").await;
        let (_, list) = s.get(&key, "/templates").await;
        let ids: Vec<&str> = list["templates"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["prime-fanout", "sales-report", "small-change"]);
        assert_eq!(list["templates"][0]["shipped"], true);

        let tpl = json!({
            "id": "greet", "name": "Greeting", "description": "Says hello", "category": "demo",
            "metadata": {"owner": "team-a"},
            "plan": {"name": "greet", "inputs": {"who": {"type": "string"}, "times": {"type": "integer", "default": 2}},
                     "tasks": [{"id": "say", "tool": "test:echo", "inputs": {"who": "${inputs.who}", "times": "${inputs.times}"}}]}
        });
        let (st, t) = s.post(&key, "/templates", "application/json", &tpl.to_string()).await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        assert_eq!(t["usageCount"], 0);
        let (st, e) = s.post(&key, "/templates", "application/json", &tpl.to_string()).await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert_eq!(e["error"]["code"], "template_exists");
        let bad = json!({"id": "bad one", "name": "", "plan": {"name": "b", "tasks": [{"id": "x", "tool": "nope"}]}});
        let (st, e) = s.post(&key, "/templates", "application/json", &bad.to_string()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e["error"]["problems"].as_array().unwrap().len(), 3, "{e}");

        // Instantiate: inputs over the defaults; usage count goes up with the run.
        let (st, run) = s.post(&key, "/templates/greet/instantiate", "application/json", r#"{"inputs": {"who": "ada"}}"#).await;
        assert_eq!(st, StatusCode::CREATED, "{run}");
        assert_eq!(run["fromTemplate"], "greet");
        s.wait(run["id"].as_str().unwrap()).await;
        let (_, done) = s.get(&key, &format!("/runs/{}", run["id"].as_str().unwrap())).await;
        assert_eq!(done["tasks"][0]["outputs"], json!({"who": "ada", "times": 2}));
        let (_, t) = s.get(&key, "/templates/greet").await;
        assert_eq!(t["usageCount"], 1);
        let (st, e) = s.post(&key, "/templates/greet/instantiate", "application/json", "{}").await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e["error"]["problems"][0]["message"].as_str().unwrap().contains("who"), "{e}");
        // POST /runs with a template does the same.
        let (st, run2) = s.post(&key, "/runs", "application/json", r#"{"template": "greet", "inputs": {"who": "bob"}}"#).await;
        assert_eq!(st, StatusCode::CREATED, "{run2}");
        assert_eq!(run2["fromTemplate"], "greet");
        // An idempotent instantiate: one run, one use.
        let idem = || {
            s.http.post(s.url("/templates/greet/instantiate")).bearer_auth(&key)
                .header("idempotency-key", "k1").header("content-type", "application/json")
                .body(r#"{"inputs": {"who": "cy"}}"#).send()
        };
        let a: Value = idem().await.unwrap().json().await.unwrap();
        let b: Value = idem().await.unwrap().json().await.unwrap();
        assert_eq!(a["id"], b["id"]);
        s.wait(a["id"].as_str().unwrap()).await;
        s.wait(run2["id"].as_str().unwrap()).await;
        let (_, t) = s.get(&key, "/templates/greet").await;
        assert_eq!(t["usageCount"], 3);
        let (_, demo) = s.get(&key, "/templates?category=demo").await;
        assert_eq!(demo["templates"].as_array().unwrap().len(), 1);
        let (_, all) = s.get(&key, "/templates").await;
        assert_eq!(all["templates"][0]["id"], "greet", "most used first");

        // Another project sees the shipped templates, not acme's.
        let other = s.key("globex").await;
        let (st, e) = s.get(&other, "/templates/greet").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["code"], "not_found");
        let (st, _) = s.post(&other, "/templates/greet/instantiate", "application/json", "{}").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (_, theirs) = s.get(&other, "/templates").await;
        assert_eq!(theirs["templates"].as_array().unwrap().len(), 3);
        // A shipped template runs for anyone; its id cannot be taken over.
        let (st, run) = s.post(&other, "/templates/sales-report/instantiate", "application/json", r#"{"inputs": {"rows": 20}}"#).await;
        assert_eq!(st, StatusCode::CREATED, "{run}");
        s.wait(run["id"].as_str().unwrap()).await;
        let shadow = json!({"id": "sales-report", "name": "Mine", "plan": {"name": "m", "tasks": [{"id": "a", "tool": "test:echo"}]}});
        let (st, _) = s.post(&other, "/templates", "application/json", &shadow.to_string()).await;
        assert_eq!(st, StatusCode::CONFLICT);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_in_openapi_json_exists_on_the_server() {
    let store = TestStore::sqlite().await;
    let s = Server::start(&store).await;
    let key = s.key("acme").await;
    let r = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        nofx::api::openapi::OPERATIONS.len()
    );
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = s.url(
                &path
                    .replace("{id}", "01a20000-0000-7000-8000-000000000000")
                    .replace("{name}", "x"),
            );
            let req = match method.as_str() {
                "get" => s.http.get(&url),
                "post" => s.http.post(&url).body("{}"),
                "delete" => s.http.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let r = req.bearer_auth(&key).send().await.unwrap();
            let status = r.status();
            let sse = r
                .headers()
                .get("content-type")
                .is_some_and(|c| c.to_str().unwrap().starts_with("text/event-stream"));
            // An event stream stays open: its headers say it is served.
            let body: Value = if sse {
                Value::Null
            } else {
                r.json().await.unwrap_or(Value::Null)
            };
            let fallback = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no endpoint"));
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !fallback,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
    s.stop().await;
}

both_stores! {
    async fn the_project_stream_carries_every_run_change_of_the_project_and_resumes_without_gaps(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let other = s.key("globex").await;
        let open = |last: Option<String>| {
            let mut r = s.http.get(s.url("/runs/stream")).bearer_auth(&key);
            if let Some(l) = last {
                r = r.header("last-event-id", l);
            }
            r.send()
        };
        let first = open(None).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        // Two runs of acme, one of globex.
        let (_, a) = s.post(&key, "/runs", "application/yaml", PLAN).await;
        let (_, g) = s.post(&other, "/runs", "application/yaml", PLAN).await;
        s.wait(a["id"].as_str().unwrap()).await;
        s.wait(g["id"].as_str().unwrap()).await;
        // run.created, run.started, 2 × task.succeeded, run.succeeded = 5 frames for run a.
        let got = raw_frames(first, 5).await;
        let a_id = a["id"].as_str().unwrap();
        assert!(got.iter().all(|(_, _, d)| d["runId"] == a_id), "only the key's project: {got:?}");
        let kinds: Vec<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(kinds, vec!["run.created", "run.started", "task.succeeded", "task.succeeded", "run.succeeded"]);
        // A second run while disconnected; resuming from the last frame misses nothing.
        let last = got.last().unwrap().0.clone();
        let (_, b) = s.post(&key, "/runs", "application/yaml", PLAN).await;
        let b_id = b["id"].as_str().unwrap().to_string();
        s.wait(&b_id).await;
        let resumed = open(Some(last)).await.unwrap();
        let mut seen: std::collections::HashSet<(String, i64)> = got.iter().map(|(_, _, d)| (d["runId"].as_str().unwrap().to_string(), d["seq"].as_i64().unwrap())).collect();
        let mut fresh = Vec::new();
        let mut frames = resumed_frames(resumed);
        while fresh.len() < 5 {
            let (_, kind, d) = frames.next().await.expect("the stream goes on");
            let key = (d["runId"].as_str().unwrap().to_string(), d["seq"].as_i64().unwrap());
            if seen.insert(key) {
                assert_eq!(d["runId"], b_id.as_str());
                fresh.push(kind);
            }
        }
        assert_eq!(fresh.first().map(String::as_str), Some("run.created"));
        assert_eq!(fresh.last().map(String::as_str), Some("run.succeeded"));
        s.stop().await;
    }
}

both_stores! {
    async fn the_project_stream_carries_the_runs_another_process_executes(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let stream = s.http.get(s.url("/runs/stream")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        // Another runtime on the same store executes a run of acme: this server only sees it
        // in the store.
        let other = store.runtime().await;
        let opts = nofx::SubmitOptions { project: Some("acme".into()), ..Default::default() };
        let run = other.submit_opts(&common::plan(PLAN), Default::default(), opts).await.unwrap();
        run.wait().await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), raw_frames(stream, 5))
            .await
            .expect("the run's events reach the stream");
        let id = run.id().to_string();
        assert!(got.iter().all(|(_, _, d)| d["runId"] == id.as_str()), "{got:?}");
        let kinds: Vec<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(kinds, vec!["run.created", "run.started", "task.succeeded", "task.succeeded", "run.succeeded"]);
        other.shutdown().await;
        s.stop().await;
    }
}

type RawFrame = (String, String, Value);

/// The first `n` frames (id, event, data) of an open SSE response.
async fn raw_frames(resp: reqwest::Response, n: usize) -> Vec<RawFrame> {
    resumed_frames(resp).take(n).collect().await
}

fn resumed_frames(resp: reqwest::Response) -> impl futures::Stream<Item = RawFrame> + Unpin {
    use eventsource_stream::Eventsource;
    Box::pin(
        resp.bytes_stream()
            .eventsource()
            .filter_map(|ev| async move {
                let ev = ev.ok()?;
                let data: Value = serde_json::from_str(&ev.data).ok()?;
                Some((ev.id, ev.event, data))
            }),
    )
}

both_stores! {
    async fn a_run_can_be_checkpointed_over_http(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let (_, run) = s.post(&key, "/runs", "application/yaml", PLAN).await;
        let id = run["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (st, cp) = s.post(&key, &format!("/runs/{id}/checkpoints"), "application/json", r#"{"description": "done"}"#).await;
        assert_eq!(st, StatusCode::CREATED, "{cp}");
        assert_eq!(cp["step"], 2);
        assert_eq!(cp["description"], "done");
        let (_, list) = s.get(&key, &format!("/runs/{id}/checkpoints")).await;
        assert_eq!(list["checkpoints"][0]["id"], cp["id"]);
        let other = s.key("globex").await;
        let (st, _) = s.post(&other, &format!("/runs/{id}/checkpoints"), "application/json", "").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = s.post(&key, &format!("/runs/{id}/checkpoints"), "application/json", r#"{"nope": 1}"#).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        s.stop().await;
    }
}

both_stores! {
    async fn a_checkpoint_can_be_restored_and_a_run_forked_over_http(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let (_, run) = s.post(&key, "/runs", "application/yaml", PLAN).await;
        let id = run["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (_, cp) = s.post(&key, &format!("/runs/{id}/checkpoints"), "application/json", "").await;
        let cp_id = cp["id"].as_str().unwrap().to_string();

        let (st, restored) = s.post(&key, &format!("/checkpoints/{cp_id}/restore"), "application/json", "").await;
        assert_eq!(st, StatusCode::CREATED, "{restored}");
        assert_eq!(restored["parentRunId"], id.as_str());
        assert_eq!(restored["checkpointId"], cp_id.as_str());
        assert_eq!(restored["project"], "acme");
        assert!(restored.get("workspace").is_none());
        let rid = restored["id"].as_str().unwrap().to_string();
        s.wait(&rid).await;
        let (_, done) = s.get(&key, &format!("/runs/{rid}")).await;
        assert_eq!(done["status"], "succeeded");
        assert_eq!(done["tasks"][0]["restoredFrom"], cp_id.as_str());

        // Another project sees neither the checkpoint nor the run.
        let other = s.key("globex").await;
        let (st, _) = s.post(&other, &format!("/checkpoints/{cp_id}/restore"), "application/json", "").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = s.post(&other, &format!("/runs/{id}/fork"), "application/json", r#"{"at": "b"}"#).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, body) = s.post(&key, "/checkpoints/cp-nope/restore", "application/json", "").await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

        let patch = r#"{"at": "b", "patch": {"tasks": {"b": {"inputs": {"y": "changed"}}}}}"#;
        let (st, forked) = s.post(&key, &format!("/runs/{id}/fork"), "application/json", patch).await;
        assert_eq!(st, StatusCode::CREATED, "{forked}");
        assert_eq!(forked["forkedAt"], "b");
        let fid = forked["id"].as_str().unwrap().to_string();
        s.wait(&fid).await;
        let (_, done) = s.get(&key, &format!("/runs/{fid}")).await;
        assert_eq!(done["tasks"][1]["outputs"]["y"], "changed");
        assert_eq!(done["tasks"][1]["restoredFrom"], Value::Null);
        assert!(done["tasks"][0]["restoredFrom"].is_string());

        let (st, body) = s.post(&key, &format!("/runs/{id}/fork"), "application/json", r#"{"at": "zz"}"#).await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_fork")));
        let (st, body) = s.post(&key, &format!("/runs/{id}/fork"), "application/json", r#"{"at": "b", "patch": {"tasks": {"b": {"tool": "nope"}}}}"#).await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_plan")), "{body}");
        let (st, _) = s.post(&key, &format!("/runs/{id}/fork"), "application/json", "{}").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        s.stop().await;
    }
}

both_stores! {
    async fn a_waiting_task_is_decided_over_http(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let plan = "name: gated\ntasks:\n  - id: a\n    tool: test:echo\n    inputs: { x: 1 }\n    gates: [{ kind: manual, approvers: [alice] }]\n";
        let (_, run) = s.post(&key, "/runs", "application/yaml", plan).await;
        let id = run["id"].as_str().unwrap().to_string();
        let url = format!("/runs/{id}/tasks/a/approval");
        let mut waiting = false;
        for _ in 0..200 {
            let (_, r) = s.get(&key, &format!("/runs/{id}")).await;
            if r["status"] == "waiting" {
                waiting = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(waiting);
        let other = s.key("globex").await;
        let (st, _) = s.post(&other, &url, "application/json", r#"{"decision": "approve", "by": "alice"}"#).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, body) = s.post(&key, &url, "application/json", r#"{"decision": "approve", "by": "eve"}"#).await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_an_approver")));
        let (st, body) = s.post(&key, &url, "application/json", r#"{"decision": "maybe", "by": "alice"}"#).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("\"maybe\""));
        let (st, body) = s.post(&key, &format!("/runs/{id}/tasks/zz/approval"), "application/json", r#"{"decision": "approve", "by": "alice"}"#).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
        let (st, w) = s.post(&key, &url, "application/json", r#"{"decision": "approve", "by": "alice", "reason": "fine"}"#).await;
        assert_eq!(st, StatusCode::OK, "{w}");
        assert_eq!((w["decision"].as_str(), w["decidedBy"].as_str(), w["reason"].as_str()), (Some("approve"), Some("alice"), Some("fine")));
        let (st, body) = s.post(&key, &url, "application/json", r#"{"decision": "reject", "by": "alice"}"#).await;
        assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_waiting")));
        s.wait(&id).await;
        let (_, r) = s.get(&key, &format!("/runs/{id}")).await;
        assert_eq!(r["status"], "succeeded");
        s.stop().await;
    }
}

both_stores! {
    async fn keys_do_what_their_scopes_allow_and_say_which_scope_is_missing(store) {
        use nofx::store::Scope;
        let s = Server::start(&store).await;
        let mk = |scopes: &'static [Scope]| {
            let rt = s.rt.clone();
            async move { rt.store().create_key("acme", None, scopes).await.unwrap().1 }
        };
        let submit = mk(&[]).await; // no scope given: `submit` only
        let shell = mk(&[Scope::Submit, Scope::Shell]).await;
        let admin = mk(&[Scope::Admin]).await;
        let shell_plan = "name: sh\ntasks:\n  - { id: a, tool: shell, inputs: { argv: [\"true\"] } }\n";
        let gate_plan = "name: g\ntasks:\n  - { id: a, tool: test:echo, gates: [ { kind: command, argv: [\"true\"] } ] }\n";
        let echo_plan = "name: e\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n";
        let runs_before = s.rt.store().runs(&[], 100).await.unwrap().len();
        for plan in [shell_plan, gate_plan] {
            let (st, e) = s.post(&submit, "/runs", "application/yaml", plan).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
            assert_eq!(e["error"]["code"], "missing_scope");
            assert_eq!(e["error"]["scope"], "shell");
            assert!(e["error"]["message"].as_str().unwrap().contains("`shell` scope"), "{e}");
        }
        assert_eq!(s.rt.store().runs(&[], 100).await.unwrap().len(), runs_before, "nothing stored");
        let (st, r) = s.post(&submit, "/runs", "application/yaml", echo_plan).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let (st, r) = s.post(&shell, "/runs", "application/yaml", shell_plan).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
        s.wait(r["id"].as_str().unwrap()).await;
        // A fork of a shell run needs `shell` as much as the run did.
        let id = r["id"].as_str().unwrap();
        let (st, e) = s.post(&submit, &format!("/runs/{id}/fork"), "application/json", "{\"at\": \"a\"}").await;
        assert_eq!((st, e["error"]["scope"].as_str()), (StatusCode::FORBIDDEN, Some("shell")), "{e}");
        // `admin` alone reads and sees /metrics, but changes nothing.
        let (st, e) = s.post(&admin, "/runs", "application/yaml", echo_plan).await;
        assert_eq!((st, e["error"]["scope"].as_str()), (StatusCode::FORBIDDEN, Some("submit")), "{e}");
        let (st, _) = s.get(&admin, "/runs").await;
        assert_eq!(st, StatusCode::OK);
        let r = s.http.get(s.url("/metrics")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = s.http.get(s.url("/metrics")).bearer_auth(&submit).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["scope"], "admin");
        s.stop().await;
    }
}

both_stores! {
    async fn a_deeply_nested_body_is_a_422_naming_the_limit_and_stores_nothing(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let n = 50_000;
        let yaml = format!(
            "name: x\ntasks:\n  - {{ id: a, tool: test:echo, inputs: {{ x: {}{} }} }}\n",
            "[".repeat(n),
            "]".repeat(n)
        );
        let (st, e) = s.post(&key, "/runs", "application/yaml", &yaml).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(e["error"]["problems"][0]["message"].as_str().unwrap().contains("nested deeper than 64 levels"), "{e}");
        let deep = format!("{{\"plan\": {{\"name\": \"x\", \"tasks\": [{{\"id\": \"a\", \"tool\": \"test:echo\", \"inputs\": {{\"x\": {}{}}}}}]}}}}", "[".repeat(100), "]".repeat(100));
        let (st, e) = s.post(&key, "/runs", "application/json", &deep).await;
        assert!(st.is_client_error(), "{st} {e}");
        let (_, runs) = s.get(&key, "/runs").await;
        assert_eq!(runs["runs"], json!([]));
        s.stop().await;
    }
}

both_stores! {
    async fn small_http_things_answer_clearly(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        // The scheme is case-insensitive.
        let r = s.http.get(s.url("/runs")).header("authorization", format!("bearer {key}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // 405 is JSON naming the operation.
        let r = s.http.delete(s.url("/runs")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "method_not_allowed", "{e}");
        // 413 says the limit (on a connection of its own: the server closes it unread).
        let big = "x".repeat(3 * 1024 * 1024);
        let r = reqwest::Client::new()
            .post(s.url("/runs"))
            .bearer_auth(&key)
            .header("content-type", "application/yaml")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["limit"], 2 * 1024 * 1024, "{e}");
        // Query errors name their parameter.
        let (st, e) = s.get(&key, "/runs?limit=abc").await;
        assert_eq!((st, e["error"]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("`limit`"), "{e}");
        let (st, e) = s.get(&key, "/analytics/usage?startDate=2026-02-01&endDate=2026-01-01").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.contains("endDate") && m.contains("startDate") && !m.contains("until"), "{e}");
        s.stop().await;
    }
}

both_stores! {
    async fn guessing_keys_is_slowed_down_per_address(store) {
        let s = Server::start(&store).await;
        let mut codes = Vec::new();
        for i in 0..30 {
            let (st, _) = s.get(&format!("nofx_guess{i}"), "/runs").await;
            codes.push(st);
            if st == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
        }
        assert_eq!(codes[0], StatusCode::UNAUTHORIZED);
        assert_eq!(codes.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
        // A good key from the same address is not held back by the bad ones.
        let key = s.key("acme").await;
        let (st, _) = s.get(&key, "/runs").await;
        assert_eq!(st, StatusCode::OK);
        s.stop().await;
    }
}

both_stores! {
    async fn a_program_serves_with_the_service_library_call_and_drains_on_shutdown(store) {
        // A run stored and left for someone to execute.
        let first = store.runtime().await;
        let opts = nofx::SubmitOptions { detach: true, ..Default::default() };
        let left = first.submit_opts(&common::plan(PLAN), Default::default(), opts).await.unwrap().id();
        first.shutdown().await;

        // Not in a fleet: only the service's start takes runs.
        let rt = store.builder().build().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = nofx::service::Service::start(rt, listener, Default::default()).await.unwrap();
        assert_eq!(service.resumed(), &[left], "it takes the run nobody executes");
        let base = format!("http://{}", service.local_addr().unwrap());
        let rt = service.runtime().clone();
        let (_, key) = rt.store().create_key("default", None, &nofx::store::Scope::ALL).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(service.run(async {
            let _ = rx.await;
        }));
        let store2 = rt.store().clone();
        common::until(std::time::Duration::from_secs(20), || {
            let s = store2.clone();
            async move { s.run(left).await.unwrap().status == nofx::RunStatus::Succeeded }
        })
        .await;
        let r = reqwest::Client::new().get(format!("{base}/runs/{left}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["status"], "succeeded");
        // An open event stream does not hold the shutdown up: it ends when the server stops.
        let stream = reqwest::Client::new().get(format!("{base}/runs/stream")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(15), serving)
            .await
            .expect("the service stops while a stream is open")
            .unwrap()
            .expect("the service stops cleanly");
        assert!(stream.bytes().await.is_ok(), "the stream ended");
        assert!(reqwest::Client::new().get(format!("{base}/runs/{left}")).send().await.is_err(), "it no longer listens");
    }
}

both_stores! {
    async fn a_run_document_over_http_carries_the_task_tree(store) {
        let s = Server::start(&store).await;
        let key = s.key("acme").await;
        let plan = "name: tree\ntasks:\n  - id: p\n    decompose:\n      subtasks:\n        - { id: a, tool: test:echo, inputs: { v: 1 } }\n        - { id: b, tool: test:echo, depends_on: [a] }\n  - { id: after, tool: test:echo, inputs: { got: \"${tasks.p.outputs.a.v}\" } }\n";
        let (status, body) = s.post(&key, "/runs", "application/yaml", plan).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        s.wait(&id).await;
        let (status, doc) = s.get(&key, &format!("/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let tasks: Vec<(Value, Value, Value)> = doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].clone(), t["parentTaskId"].clone(), t["depth"].clone()))
            .collect();
        assert_eq!(tasks, vec![
            (json!("p"), Value::Null, json!(0)),
            (json!("p.a"), json!("p"), json!(1)),
            (json!("p.b"), json!("p"), json!(1)),
            (json!("after"), Value::Null, json!(0)),
        ]);
        assert_eq!(doc["tasks"][3]["outputs"]["got"], json!(1));
        // A plan whose sub-plan is invalid is refused with 4xx, naming the subtask.
        let bad = "name: bad\ntasks:\n  - id: p\n    decompose: { subtasks: [ { id: x, tool: nope } ] }\n";
        let (status, body) = s.post(&key, "/runs", "application/yaml", bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains("task `p.x`: unknown tool `nope`"), "{body}");
        s.stop().await;
    }
}
