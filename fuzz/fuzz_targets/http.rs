//! Request bodies, headers and query strings of the HTTP API, sent to the axum router in
//! process (a runtime on the in-memory store, a key of one project without the shell scope,
//! a finished run to refer to). The first byte picks the request, the rest is what it
//! carries. Properties: an answer for every request, never a 500, a panic or a hang.
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Map;
use std::sync::{Mutex, OnceLock};
use tower::ServiceExt;

mod common;

/// What requests refer to, made on each fresh runtime.
struct Fixture {
    app: axum::Router,
    key: String,
    run: String,
}

fn fixture() -> &'static Mutex<Option<Fixture>> {
    static F: OnceLock<Mutex<Option<Fixture>>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(None))
}

fn setup(tokio: &tokio::runtime::Runtime, rt: &nofx::Runtime) {
    let made = tokio.block_on(async {
        let (_, key) = rt
            .store()
            .create_key(
                "fuzz",
                None,
                &[nofx::store::Scope::Submit, nofx::store::Scope::Admin],
            )
            .await
            .expect("a key");
        let src = nofx::plan::PlanSource::parse(
            "name: f\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n",
            nofx::plan::Format::Yaml,
            None,
        )
        .expect("the fixture plan parses");
        let run = rt.submit(&src, Map::new()).await.expect("the fixture run");
        run.wait_status().await.expect("the fixture run ends");
        let opts = nofx::api::ApiOptions {
            requests_per_second: std::num::NonZeroU32::MAX,
            ui: true,
        };
        Fixture {
            app: nofx::api::router(rt.clone(), opts),
            key,
            run: run.id().to_string(),
        }
    });
    *fixture().lock().unwrap_or_else(|p| p.into_inner()) = Some(made);
}

/// `text` as one query-string value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut env = common::env(setup);
    let _ = env.rt();
    env.runs += 1;
    let (app, key, run) = {
        let f = fixture().lock().unwrap_or_else(|p| p.into_inner());
        let f = f.as_ref().expect("set up with the runtime");
        (f.app.clone(), f.key.clone(), f.run.clone())
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let post = |path: String, content_type: &str| {
        Request::post(path)
            .header("content-type", content_type)
            .body(Body::from(rest.to_vec()))
    };
    let get = |path: String| Request::get(path).body(Body::empty());
    // Most requests carry the key; the session cookie's are the fuzzer's own.
    let mut bearer = true;
    let request = match pick % 20 {
        0 => post("/runs".into(), "application/json"),
        1 => post("/runs".into(), "application/yaml"),
        2 => post("/templates".into(), "application/json"),
        3 => post("/templates/prime-fanout/instantiate".into(), "application/json"),
        4 => post("/gather".into(), "application/json"),
        5 => post("/prps".into(), "application/json"),
        6 => post("/prps".into(), "application/yaml"),
        7 => post(format!("/runs/{run}/fork"), "application/json"),
        8 => post(format!("/runs/{run}/tasks/a/approval"), "application/json"),
        9 => post(format!("/runs/{run}/questions/q1/answer"), "application/json"),
        10 => post(format!("/runs/{run}/cancel"), "application/json"),
        11 => get(format!("/runs/{run}/events?after={}", query_value(&text))),
        12 => Request::get(format!("/runs/{run}/stream"))
            .header("last-event-id", rest)
            .body(Body::empty()),
        13 => get(format!("/runs?status={0}&cursor={0}&limit={0}", query_value(&text))),
        14 => get(format!("/analytics/usage?from={0}&to={0}&groupBy={0}", query_value(&text))),
        15 => post("/session".into(), "application/json"),
        16 => {
            bearer = false;
            Request::post("/runs")
                .header("cookie", rest)
                .header("x-nofx-csrf", rest)
                .body(Body::empty())
        }
        17 => get(format!("/runs/{run}/tasks/{}", query_value(&text))),
        18 => get(format!("/ui/{}", query_value(&text))),
        _ => get(format!("/runs/{}", query_value(&text))),
    };
    // A header value the fuzzer made that HTTP cannot carry is refused before the router.
    let Ok(mut request) = request else {
        return;
    };
    if bearer {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("a key is a header value"),
        );
    }
    let status = env.tokio.block_on(async move {
        let resp = app.oneshot(request).await.expect("the router answers");
        resp.status()
    });
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "request {} answered 500: {text:?}",
        pick % 20
    );
});
