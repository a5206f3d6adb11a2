//! A fake OpenAI-compatible model provider that fails on purpose: it answers chat
//! completions (plain and streamed, text and tool calls) and gives a chosen share of requests
//! the failures real providers give — 429 with Retry-After, 529, 500, no answer in time,
//! malformed JSON, answers cut off midway. Point nofx at it to watch retries, fallbacks,
//! budgets and usage rows under provider faults without a key or a network:
//!
//! ```sh
//! cargo run --example fake_provider -- --port 8089 --rate-limited 0.1 --cut 0.05
//! OPENAI_BASE_URL=http://127.0.0.1:8089/v1 nofx run examples/models/notes.yaml
//! curl -s http://127.0.0.1:8089/stats   # requests by how they were answered
//! ```
//!
//! Flags: `--port N` (0: any free port; the URL is printed), `--seed N`, and the share of
//! requests (0 to 1) given each failure: `--rate-limited`, `--overloaded`, `--server-error`,
//! `--timeout`, `--malformed`, `--cut`; `--retry-after SECONDS` (what a 429 asks, 1 s) and
//! `--hang SECONDS` (how long a request given no answer is held, 600 s). Without flags every
//! failure is given to 2% of requests. Ctrl-C prints the tallies as JSON and exits.

// Shared with the chaos test and the fake provider; each uses part of it.
#[allow(dead_code)]
#[path = "support/chaos_provider.rs"]
mod chaos;

use chaos::{ChaosProvider, Faults};
use std::time::Duration;

fn args() -> Result<(u16, u64, Faults), String> {
    let mut port = 8089;
    let mut seed = 1;
    let mut f = Faults {
        rate_limited: 0.02,
        retry_after: Duration::from_secs(1),
        overloaded: 0.02,
        server_error: 0.02,
        timeout: 0.02,
        hang: Duration::from_secs(600),
        malformed: 0.02,
        cut: 0.02,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or(format!("{flag}: `{value}` is not a number of 0 or more"))
        };
        let share = || {
            number().and_then(|v| {
                (v <= 1.0)
                    .then_some(v)
                    .ok_or(format!("{flag}: a share is between 0 and 1"))
            })
        };
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|_| format!("--port: `{value}`"))?,
            "--seed" => seed = value.parse().map_err(|_| format!("--seed: `{value}`"))?,
            "--rate-limited" => f.rate_limited = share()?,
            "--overloaded" => f.overloaded = share()?,
            "--server-error" => f.server_error = share()?,
            "--timeout" => f.timeout = share()?,
            "--malformed" => f.malformed = share()?,
            "--cut" => f.cut = share()?,
            "--retry-after" => f.retry_after = Duration::from_secs_f64(number()?),
            "--hang" => f.hang = Duration::from_secs_f64(number()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let total = f.rate_limited + f.overloaded + f.server_error + f.timeout + f.malformed + f.cut;
    if total > 1.0 {
        return Err(format!("the failure shares add up to {total}, more than 1"));
    }
    Ok((port, seed, f))
}

#[tokio::main]
async fn main() {
    let (port, seed, faults) = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake_provider: {e}");
            std::process::exit(2);
        }
    };
    let provider = ChaosProvider::new(faults, seed);
    let url = match provider.start(port).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("fake_provider: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("fake provider on {url}");
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("fake_provider: cannot wait for Ctrl-C");
    }
    let requests: u64 = provider.tally().values().sum();
    println!(
        "{}",
        serde_json::json!({"requests": requests, "answered": provider.tally()})
    );
}
