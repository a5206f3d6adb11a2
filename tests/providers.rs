//! Provider clients against local HTTP servers that speak each provider's wire format and
//! check the requests they receive: success with usage, 429 with Retry-After, 529, 5xx, a slow
//! answer past the timeout, a malformed body, an auth error, a prompt too long.

mod common;

use common::llm::{reply, server, sse, Reply};
use nofx::models::{
    complete_with_retry, Anthropic, ApiKey, CompletionRequest, ErrorKind, Message, OpenAi,
    Provider, RetryPolicy, Timeouts, ToolCall, ToolResult, ToolSpec,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn request() -> CompletionRequest {
    CompletionRequest {
        model: "test-model".into(),
        system: Some("be brief".into()),
        messages: vec![Message::user("hello")],
        max_tokens: 64,
        temperature: None,
        tools: Vec::new(),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
    }
}

fn anthropic_ok() -> Reply {
    reply(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "test-model",
            "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 3}
        }),
    )
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    reply(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn openai_ok() -> Reply {
    reply(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        }),
    )
}

fn openai_error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    reply(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

const KEY: &str = "sk-test-secret-0123456789";

fn anthropic(base: &str, timeouts: Timeouts) -> Anthropic {
    Anthropic::new("anthropic", base, ApiKey::new(KEY), timeouts).unwrap()
}

fn openai(base: &str, timeouts: Timeouts) -> OpenAi {
    OpenAi::new(
        "openai",
        &format!("{base}/v1"),
        Some(ApiKey::new(KEY)),
        timeouts,
    )
    .unwrap()
}

#[tokio::test]
async fn anthropic_sends_the_messages_api_request_and_reads_usage() {
    let (base, script) = server("/v1/messages", vec![anthropic_ok()]).await;
    let c = anthropic(&base, Timeouts::default())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(
        (c.text.as_str(), c.input_tokens, c.output_tokens),
        ("hi there", 12, 3)
    );
    assert_eq!(c.stop_reason.as_deref(), Some("end_turn"));
    let seen = script.seen()[0].clone();
    assert_eq!(seen.headers["x-api-key"], KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.body["model"], "test-model");
    assert_eq!(seen.body["max_tokens"], 64);
    // The system prompt and the last message are marked for the prompt cache.
    assert_eq!(
        seen.body["system"],
        json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}
        ]}])
    );
}

#[tokio::test]
async fn openai_sends_a_chat_completion_with_a_bearer_key_and_reads_usage() {
    let (base, script) = server("/v1/chat/completions", vec![openai_ok()]).await;
    let c = openai(&base, Timeouts::default())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(
        (c.text.as_str(), c.input_tokens, c.output_tokens),
        ("hi there", 12, 3)
    );
    assert_eq!(c.stop_reason.as_deref(), Some("stop"));
    let seen = script.seen()[0].clone();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
    );
    assert_eq!(seen.body["max_tokens"], 64);
}

#[tokio::test]
async fn a_local_server_without_a_key_gets_no_authorization_header() {
    let (base, script) = server("/v1/chat/completions", vec![openai_ok()]).await;
    let local = OpenAi::new("ollama", &format!("{base}/v1"), None, Timeouts::default()).unwrap();
    local.complete(&request()).await.unwrap();
    assert!(script.seen()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_providers_retry_after() {
    let mut limited = anthropic_error(429, "rate_limit_error", "slow down");
    limited.headers.push(("retry-after", "0.3"));
    let (base, script) = server("/v1/messages", vec![limited, anthropic_ok()]).await;
    let client = anthropic(&base, Timeouts::default());
    let started = Instant::now();
    let tried = complete_with_retry(&client, &request(), fast()).await;
    assert!(tried.result.is_ok());
    assert_eq!(tried.failures.len(), 1);
    assert_eq!(tried.failures[0].kind, ErrorKind::RateLimited);
    assert_eq!(
        tried.failures[0].retry_after,
        Some(Duration::from_millis(300))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "Retry-After was not honoured"
    );
    assert_eq!(script.seen().len(), 2);

    let mut limited = openai_error(429, "requests", "rate_limit_exceeded", "Rate limit reached");
    limited.headers.push(("retry-after", "0.2"));
    let (base, _) = server("/v1/chat/completions", vec![limited, openai_ok()]).await;
    let tried = complete_with_retry(&openai(&base, Timeouts::default()), &request(), fast()).await;
    assert!(tried.result.is_ok());
    assert_eq!(tried.failures[0].kind, ErrorKind::RateLimited);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_waits_is_never_cut_short() {
    // The provider asks for 5 s; the policy waits at most 2 s: the call is not sent again
    // early (it fails at once, for the gateway to fall back to the next model).
    let mut limited = openai_error(429, "requests", "rate_limit_exceeded", "Rate limit reached");
    limited.headers.push(("retry-after", "5"));
    let (base, script) = server("/v1/chat/completions", vec![limited, openai_ok()]).await;
    let started = Instant::now();
    let tried = complete_with_retry(&openai(&base, Timeouts::default()), &request(), fast()).await;
    let e = tried
        .result
        .expect_err("not retried before the provider's Retry-After");
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
    assert!(tried.failures.is_empty());
    assert_eq!(script.seen().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn overloaded_and_server_errors_are_retried_then_given_up() {
    let (base, _) = server(
        "/v1/messages",
        vec![
            anthropic_error(529, "overloaded_error", "Overloaded"),
            anthropic_ok(),
        ],
    )
    .await;
    let tried =
        complete_with_retry(&anthropic(&base, Timeouts::default()), &request(), fast()).await;
    assert!(tried.result.is_ok());
    assert_eq!(tried.failures[0].kind, ErrorKind::Overloaded);

    let five = vec![
        reply(500, json!({})),
        reply(502, json!({})),
        reply(503, json!({})),
    ];
    let (base, script) = server("/v1/chat/completions", five).await;
    let tried = complete_with_retry(&openai(&base, Timeouts::default()), &request(), fast()).await;
    let err = tried.result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(err.status, Some(503));
    assert_eq!(tried.failures.len(), 2);
    assert_eq!(script.seen().len(), 3, "bounded attempts");
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_timeout() {
    let mut slow = anthropic_ok();
    slow.delay = Duration::from_secs(5);
    let (base, _) = server("/v1/messages", vec![slow]).await;
    let t = Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_millis(300),
    };
    let started = Instant::now();
    let err = anthropic(&base, t).complete(&request()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn malformed_bodies_are_errors_not_panics() {
    let garbage = Reply {
        status: 200,
        headers: vec![],
        body: "<html>oops".into(),
        delay: Duration::ZERO,
    };
    let (base, _) = server(
        "/v1/messages",
        vec![
            garbage.clone(),
            reply(200, json!({"content": "wrong shape"})),
        ],
    )
    .await;
    let client = anthropic(&base, Timeouts::default());
    for _ in 0..2 {
        let err = client.complete(&request()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::MalformedResponse);
    }
    let (base, _) = server(
        "/v1/chat/completions",
        vec![garbage, reply(200, json!({"choices": []}))],
    )
    .await;
    let client = openai(&base, Timeouts::default());
    for _ in 0..2 {
        let err = client.complete(&request()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::MalformedResponse);
    }
}

#[tokio::test]
async fn auth_errors_are_not_retried_and_never_show_the_key() {
    let (base, script) = server(
        "/v1/messages",
        vec![anthropic_error(
            401,
            "authentication_error",
            "invalid x-api-key",
        )],
    )
    .await;
    let client = anthropic(&base, Timeouts::default());
    let tried = complete_with_retry(&client, &request(), fast()).await;
    let err = tried.result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(script.seen().len(), 1);
    assert!(!err.to_string().contains(KEY));
    assert!(!format!("{err:?}").contains(KEY));
    assert!(!format!("{:?}", ApiKey::new(KEY)).contains(KEY));

    let (base, _) = server(
        "/v1/chat/completions",
        vec![openai_error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided",
        )],
    )
    .await;
    let err = openai(&base, Timeouts::default())
        .complete(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
}

#[tokio::test]
async fn a_prompt_too_long_is_classified_as_context_too_long() {
    let (base, _) = server(
        "/v1/messages",
        vec![anthropic_error(
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        )],
    )
    .await;
    let err = anthropic(&base, Timeouts::default())
        .complete(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ContextTooLong);
    let (base, _) = server(
        "/v1/chat/completions",
        vec![openai_error(
            400,
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens",
        )],
    )
    .await;
    let err = openai(&base, Timeouts::default())
        .complete(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ContextTooLong);
    assert_eq!(err.kind.as_str(), "context_too_long");
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = anthropic(&format!("http://{addr}"), Timeouts::default())
        .complete(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connect);
}

fn collect() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&str) + Send + Sync + 'static,
) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    (got, move |t: &str| sink.lock().unwrap().push(t.to_string()))
}

fn anthropic_stream(cut: bool) -> Reply {
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "test-model", "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi "}}),
        ),
    ];
    if !cut {
        events.extend([
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 3}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]);
    }
    sse(&events)
}

fn openai_stream(cut: bool) -> Reply {
    let chunk = |content: Option<&str>, finish: Option<&str>| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
               "choices": [{"index": 0, "delta": content.map(|c| json!({"content": c})).unwrap_or(json!({})), "finish_reason": finish}]})
    };
    let mut events = vec![("", chunk(Some("hi "), None))];
    if !cut {
        events.extend([
            ("", chunk(Some("there"), Some("stop"))),
            (
                "",
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "test-model", "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}),
            ),
        ]);
    }
    let mut r = sse(&events);
    if !cut {
        r.body.push_str("data: [DONE]\n\n");
    }
    r
}

#[tokio::test]
async fn anthropic_streams_text_as_it_arrives_and_reads_usage_from_the_stream() {
    let (base, script) = server("/v1/messages", vec![anthropic_stream(false)]).await;
    let (got, on_text) = collect();
    let c = anthropic(&base, Timeouts::default())
        .stream(&request(), &on_text)
        .await
        .unwrap();
    assert_eq!(*got.lock().unwrap(), vec!["hi ", "there"]);
    assert_eq!(
        (c.text.as_str(), c.input_tokens, c.output_tokens),
        ("hi there", 12, 3)
    );
    assert_eq!(c.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(script.seen()[0].body["stream"], true);
}

#[tokio::test]
async fn openai_streams_text_and_asks_for_usage_in_the_stream() {
    let (base, script) = server("/v1/chat/completions", vec![openai_stream(false)]).await;
    let (got, on_text) = collect();
    let c = openai(&base, Timeouts::default())
        .stream(&request(), &on_text)
        .await
        .unwrap();
    assert_eq!(*got.lock().unwrap(), vec!["hi ", "there"]);
    assert_eq!((c.input_tokens, c.output_tokens), (12, 3));
    let body = &script.seen()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_stream_cut_midway_is_an_interrupted_error_with_its_partial_usage() {
    let (base, _) = server("/v1/messages", vec![anthropic_stream(true)]).await;
    let (_, on_text) = collect();
    let e = anthropic(&base, Timeouts::default())
        .stream(&request(), &on_text)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Interrupted);
    assert!(e.kind.is_transient());
    assert_eq!(e.partial_usage, Some((12, 1)));
    let (base, _) = server("/v1/chat/completions", vec![openai_stream(true)]).await;
    let e = openai(&base, Timeouts::default())
        .stream(&request(), &on_text)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Interrupted);
}

/// A conversation in which the model called a tool and got its result back, with one tool
/// on offer.
fn tool_request() -> CompletionRequest {
    let mut req = request();
    req.tools = vec![ToolSpec {
        name: "read_file".into(),
        description: "Reads a file of the workspace.".into(),
        input_schema: json!({"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}),
    }];
    let mut asked = Message::assistant("Let me look.");
    asked.tool_calls = vec![ToolCall {
        id: "call_1".into(),
        name: "read_file".into(),
        input: json!({"path": "a.txt"}),
    }];
    req.messages.push(asked);
    req.messages.push(Message::results(vec![ToolResult {
        id: "call_1".into(),
        content: "no such file".into(),
        is_error: true,
    }]));
    req
}

#[tokio::test]
async fn anthropic_offers_tools_gives_results_back_and_reads_the_calls_asked_for() {
    let answer = reply(
        200,
        json!({
            "model": "test-model",
            "content": [
                {"type": "text", "text": "Trying another."},
                {"type": "tool_use", "id": "toolu_2", "name": "read_file", "input": {"path": "b.txt"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 40, "output_tokens": 9}
        }),
    );
    let (base, script) = server("/v1/messages", vec![answer]).await;
    let c = anthropic(&base, Timeouts::default())
        .complete(&tool_request())
        .await
        .unwrap();
    assert_eq!(c.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(c.text, "Trying another.");
    assert_eq!(
        c.tool_calls,
        vec![ToolCall {
            id: "toolu_2".into(),
            name: "read_file".into(),
            input: json!({"path": "b.txt"})
        }]
    );
    let body = script.seen()[0].body.clone();
    assert_eq!(
        body["tools"],
        json!([{"name": "read_file", "description": "Reads a file of the workspace.",
                "input_schema": {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "a.txt"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "no such file", "is_error": true,
                 "cache_control": {"type": "ephemeral"}}
            ]}
        ])
    );
}

#[tokio::test]
async fn openai_offers_functions_gives_results_as_tool_messages_and_reads_the_calls() {
    let answer = reply(
        200,
        json!({
            "model": "test-model",
            "choices": [{
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"b.txt\"}"}},
                    {"id": "call_3", "type": "function", "function": {"name": "read_file", "arguments": "not json"}}
                ]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 40, "completion_tokens": 9}
        }),
    );
    let (base, script) = server("/v1/chat/completions", vec![answer]).await;
    let c = openai(&base, Timeouts::default())
        .complete(&tool_request())
        .await
        .unwrap();
    assert_eq!(c.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.text, "");
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(c.tool_calls[0].input, json!({"path": "b.txt"}));
    // Arguments that are not JSON are kept as written, for the caller to answer.
    assert_eq!(c.tool_calls[1].input, json!("not json"));
    let body = script.seen()[0].body.clone();
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "read_file", "description": "Reads a file of the workspace.",
                "parameters": {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}}}])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.txt\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "no such file"}
        ])
    );
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_from_their_pieces_in_both_formats() {
    let anthropic_events = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"model": "test-model", "usage": {"input_tokens": 40, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Reading."}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "read_file", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"pa"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "th\": \"c.txt\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let (base, _) = server("/v1/messages", vec![anthropic_events]).await;
    let c = anthropic(&base, Timeouts::default())
        .stream(&tool_request(), &|_: &str| {})
        .await
        .unwrap();
    assert_eq!(c.text, "Reading.");
    assert_eq!(
        c.tool_calls,
        vec![ToolCall {
            id: "toolu_9".into(),
            name: "read_file".into(),
            input: json!({"path": "c.txt"})
        }]
    );
    assert_eq!((c.input_tokens, c.output_tokens), (40, 12));

    let openai_chunks = sse(&[
        (
            "",
            json!({"model": "test-model", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_7", "type": "function", "function": {"name": "read_file", "arguments": ""}}]}}]}),
        ),
        (
            "",
            json!({"model": "test-model", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"path\":"}}]}}]}),
        ),
        (
            "",
            json!({"model": "test-model", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": " \"d.txt\"}"}}]}, "finish_reason": "tool_calls"}]}),
        ),
        (
            "",
            json!({"model": "test-model", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 7}}),
        ),
    ]);
    let mut done = openai_chunks;
    done.body.push_str("data: [DONE]\n\n");
    let (base, _) = server("/v1/chat/completions", vec![done]).await;
    let c = openai(&base, Timeouts::default())
        .stream(&tool_request(), &|_: &str| {})
        .await
        .unwrap();
    assert_eq!(c.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        c.tool_calls,
        vec![ToolCall {
            id: "call_7".into(),
            name: "read_file".into(),
            input: json!({"path": "d.txt"})
        }]
    );
    assert_eq!((c.input_tokens, c.output_tokens), (40, 7));
}
