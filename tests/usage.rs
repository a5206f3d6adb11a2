//! Usage aggregation on both stores, with known model calls across hour, day and ISO-week
//! boundaries.

mod common;

use nofx::store::{GroupBy, ModelCallRow, Store};

fn at(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

#[allow(clippy::too_many_arguments)]
fn call(
    when: &str,
    run: Option<&str>,
    input: i64,
    output: i64,
    cost: i64,
    dur: i64,
    ok: bool,
) -> ModelCallRow {
    ModelCallRow {
        run_id: run.map(str::to_string),
        task_id: None,
        tool: Some("llm:generate".into()),
        agent: Some("lead".into()),
        model: "claude-sonnet".into(),
        provider: "anthropic".into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        estimated_cost_micro_usd: cost,
        cost_micro_usd: cost,
        duration_ms: dur,
        success: ok,
        error_type: (!ok).then(|| "rate_limited".to_string()),
        correlation_id: "corr_1_00000000".into(),
        at: at(when),
        project: Some("default".into()),
    }
}

async fn seeded(store: &common::TestStore) -> Store {
    let s = Store::open(&store.url).await.unwrap();
    common::record_model_calls(
        &store.url,
        &[
            call(
                "2026-11-22T23:30:00Z",
                Some("run-a"),
                100,
                50,
                1500,
                100,
                true,
            ),
            call(
                "2026-11-23T00:10:00Z",
                Some("run-a"),
                10,
                5,
                200,
                300,
                false,
            ),
            call("2026-11-23T00:50:00Z", Some("run-b"), 1, 1, 10, 200, true),
            call("2026-11-24T12:00:00Z", None, 1000, 0, 3000, 50, true),
            call("2026-11-30T00:00:00Z", Some("run-c"), 7, 7, 7, 7, true),
        ],
    )
    .await;
    s
}

both_stores! {
    async fn usage_buckets_by_hour_list_every_bucket_of_the_range(store) {
        let s = seeded(&store).await;
        let r = s.usage(at("2026-11-22T23:00:00Z"), at("2026-11-23T02:00:00Z"), GroupBy::Hour, None).await.unwrap();
        let buckets: Vec<&str> = r.usage.iter().map(|b| b.bucket.as_str()).collect();
        assert_eq!(buckets, vec!["2026-11-22T23:00:00Z", "2026-11-23T00:00:00Z", "2026-11-23T01:00:00Z"]);
        let midnight = &r.usage[1];
        assert_eq!((midnight.runs, midnight.calls, midnight.tokens, midnight.errors), (2, 2, 17, 1));
        assert!((midnight.cost - 0.00021).abs() < 1e-12);
        assert_eq!(midnight.avg_duration, 250.0);
        assert_eq!((r.usage[2].calls, r.usage[2].avg_duration), (0, 0.0));
        // A range that starts inside a bucket lists that bucket, with the rows of the range only.
        let r = s.usage(at("2026-11-23T00:30:00Z"), at("2026-11-23T01:00:00Z"), GroupBy::Hour, None).await.unwrap();
        assert_eq!(r.usage.len(), 1);
        assert_eq!((r.usage[0].bucket.as_str(), r.usage[0].calls), ("2026-11-23T00:00:00Z", 1));
    }
}

both_stores! {
    async fn usage_by_day_and_iso_week_with_totals(store) {
        let s = seeded(&store).await;
        let r = s.usage(at("2026-11-22T00:00:00Z"), at("2026-11-25T00:00:00Z"), GroupBy::Day, None).await.unwrap();
        let calls: Vec<i64> = r.usage.iter().map(|b| b.calls).collect();
        assert_eq!(calls, vec![1, 2, 1]);
        assert_eq!(r.usage[2].runs, 0, "planner calls have no run");

        let r = s.usage(at("2026-11-16T00:00:00Z"), at("2026-11-30T00:00:00Z"), GroupBy::Week, None).await.unwrap();
        let weeks: Vec<(&str, i64)> = r.usage.iter().map(|b| (b.bucket.as_str(), b.calls)).collect();
        // 2026-11-22 is a Sunday: it belongs to the week of Monday 2026-11-16.
        assert_eq!(weeks, vec![("2026-11-16T00:00:00Z", 1), ("2026-11-23T00:00:00Z", 3)]);
        let t = &r.summary;
        assert_eq!((t.total_runs, t.total_calls, t.total_tokens, t.total_errors), (2, 4, 1167, 1));
        assert!((t.total_cost - 0.00471).abs() < 1e-12);
        assert_eq!(t.average_duration, 162.5);
    }
}

both_stores! {
    async fn an_empty_range_reports_zeros_never_nan(store) {
        let s = seeded(&store).await;
        let r = s.usage(at("2020-01-01T00:00:00Z"), at("2020-01-03T00:00:00Z"), GroupBy::Day, None).await.unwrap();
        assert_eq!(r.usage.len(), 2);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["summary"]["averageDuration"], 0.0);
        assert_eq!(json["summary"]["totalCost"], 0.0);
        for k in ["bucket", "runs", "calls", "tokens", "cost", "avgDuration", "errors"] {
            assert!(json["usage"][0].get(k).is_some(), "missing {k}");
        }
        let err = s.usage(at("2026-01-02T00:00:00Z"), at("2026-01-01T00:00:00Z"), GroupBy::Day, None).await.unwrap_err();
        assert!(err.to_string().contains("must be after"));
    }
}

both_stores! {
    async fn usage_counts_the_work_of_runs_without_model_calls(store) {
        let rt = store.runtime().await;
        let since = chrono::Utc::now().timestamp_millis() - 1;
        // Two attempts of `flaky` (the first fails), one of `slow`; no model is called.
        let src = common::plan("name: work\ntasks:\n  - { id: slow, tool: shell, inputs: { argv: [sleep, '0.2'] } }\n  - { id: flaky, tool: shell, inputs: { argv: [sh, -c, 'test -f again || { touch again; exit 3; }'] }, retry: { max: 1 } }\n");
        let out = rt.submit(&src, serde_json::Map::new()).await.unwrap().wait().await.unwrap();
        assert_eq!(out.status, nofx::RunStatus::Succeeded, "{out:?}");
        rt.shutdown().await;
        let until = chrono::Utc::now().timestamp_millis() + 1;
        let s = Store::open(&store.url).await.unwrap();
        let r = s.usage(since, until, GroupBy::Day, None).await.unwrap();
        let t = &r.summary;
        assert_eq!((t.total_runs, t.total_tasks, t.total_calls, t.total_errors), (1, 3, 0, 1), "{t:?}");
        assert!(t.average_duration >= 200.0 / 3.0, "{t:?}");
        let b: Vec<(i64, i64)> = r.usage.iter().map(|b| (b.runs, b.tasks)).collect();
        assert_eq!(b.iter().map(|x| x.1).sum::<i64>(), 3);
        assert!(b.iter().any(|&(runs, _)| runs == 1));
        // The run belongs to the default project: another project sees none of it.
        let other = s.usage(since, until, GroupBy::Day, Some("elsewhere")).await.unwrap();
        assert_eq!((other.summary.total_runs, other.summary.total_tasks), (0, 0));
        let own = s.usage(since, until, GroupBy::Day, Some("default")).await.unwrap();
        assert_eq!(own.summary.total_tasks, 3);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["summary"]["totalTasks"], 3);
        assert!(json["usage"][0].get("tasks").is_some());
    }
}
