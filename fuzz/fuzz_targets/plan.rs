//! Plan text (JSON and YAML) through parsing and the whole plan check. Properties: no panic,
//! no hang; an accepted plan round-trips (serialize, parse, check: the same plan); and an
//! accepted plan that only echoes runs to an end on the in-memory store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nofx::plan::{Format, PlanSource};
use serde_json::Map;
use std::time::Duration;

mod common;

/// Tasks above which an accepted echo plan is not run (the check's limits are fuzzed, not
/// the runtime's speed).
const RUN_AT_MOST: usize = 200;
/// How long an echo plan may take to end.
const RUN_WITHIN: Duration = Duration::from_secs(20);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env = common::env(common::no_setup);
    let (rt, _) = env.rt();
    for format in [Format::Json, Format::Yaml] {
        let Ok(src) = PlanSource::parse(text, format, None) else {
            continue;
        };
        let Ok(checked) = rt.validate(&src, &Map::new()) else {
            continue;
        };
        let json = serde_json::to_string(&*checked.plan).expect("an accepted plan serializes");
        let again = PlanSource::parse(&json, Format::Json, None).unwrap_or_else(|e| {
            panic!("an accepted plan, serialized, does not parse: {e}\n{json}")
        });
        let rechecked = rt.validate(&again, &Map::new()).unwrap_or_else(|e| {
            panic!("an accepted plan, serialized, fails the check: {e}\n{json}")
        });
        assert_eq!(
            checked.plan, rechecked.plan,
            "the round trip changed the plan"
        );
        let echo_only = checked
            .plan
            .tasks
            .iter()
            .all(|t| t.tool == "test:echo" && t.gates.is_empty() && t.decompose.is_none());
        if echo_only && checked.plan.tasks.len() <= RUN_AT_MOST {
            env.runs += 1;
            let rt = rt.clone();
            let ended = env.tokio.block_on(async move {
                let handle = rt.submit(&again, Map::new()).await?;
                Ok::<_, nofx::RuntimeError>(
                    tokio::time::timeout(RUN_WITHIN, handle.wait_status()).await,
                )
            });
            let (status, reason) = ended
                .expect("an accepted echo plan is stored")
                .unwrap_or_else(|_| {
                    panic!("an echo plan did not end within {RUN_WITHIN:?}\n{json}")
                })
                .expect("the run's status");
            assert!(status.is_terminal(), "{status:?} ({reason:?})\n{json}");
        }
    }
});
