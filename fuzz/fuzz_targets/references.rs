//! References (`${…}`) in a task's inputs: the fuzzed text (as a JSON value when it is one,
//! else as a string) is the input of a task that follows another, in a plan with inputs.
//! Properties: no panic, no hang; a plan the check accepts runs to an end on the in-memory
//! store (its references resolve, or the task fails saying why).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nofx::plan::{Format, PlanSource};
use serde_json::{json, Map, Value};
use std::time::Duration;

mod common;

const RUN_WITHIN: Duration = Duration::from_secs(20);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let value = serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text));
    let plan = json!({
        "name": "refs",
        "inputs": {
            "topic": {"type": "string", "default": "agents"},
            "n": {"type": "integer", "default": 3},
            "files": {"type": "array", "default": ["a.txt", "b.txt"]}
        },
        "tasks": [
            {"id": "a", "tool": "test:echo", "inputs": {"items": [1, 2, {"k": "v"}], "s": "${inputs.topic}"}},
            {"id": "b", "tool": "test:echo", "depends_on": ["a"], "inputs": {"v": value}}
        ]
    })
    .to_string();
    let Ok(src) = PlanSource::parse(&plan, Format::Json, None) else {
        return;
    };
    let mut env = common::env(common::no_setup);
    let (rt, _) = env.rt();
    if rt.validate(&src, &Map::new()).is_err() {
        return;
    }
    env.runs += 1;
    let ended = env.tokio.block_on(async move {
        let handle = rt.submit(&src, Map::new()).await?;
        Ok::<_, nofx::RuntimeError>(tokio::time::timeout(RUN_WITHIN, handle.wait_status()).await)
    });
    let (status, reason) = ended
        .expect("an accepted plan is stored")
        .unwrap_or_else(|_| panic!("the run did not end within {RUN_WITHIN:?}\n{plan}"))
        .expect("the run's status");
    assert!(status.is_terminal(), "{status:?} ({reason:?})\n{plan}");
});
