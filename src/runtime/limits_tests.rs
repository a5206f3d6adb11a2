//! Agent limits under a burst of 1,000 tasks: `max_concurrency` and `rate` always hold, and
//! every task is placed in the end (none dropped). Time is governor's fake clock.

use crate::domain::plan::Complexity;
use crate::runtime::dispatch::{Dispatcher, Waiting};
use crate::runtime::scoring::TaskNeeds;
use crate::{AgentSpec, Priority, Role, RunId};
use governor::clock::FakeRelativeClock;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

fn burst(agents: Vec<AgentSpec>, tasks: usize, work: Duration) -> HashMap<String, Vec<Duration>> {
    let clock = FakeRelativeClock::default();
    let mut d: Dispatcher<_, usize> = Dispatcher::new(agents.clone(), clock.clone());
    let run = RunId::new();
    for n in 0..tasks {
        d.enqueue(Waiting {
            run,
            priority: if n % 10 == 0 {
                Priority::High
            } else {
                Priority::Normal
            },
            needs: TaskNeeds {
                capabilities: vec!["shell".into()],
                complexity: Complexity::Low,
                parent_agent: None,
            },
            payload: n,
        });
    }
    let limits: HashMap<String, (u32, Option<f64>)> = agents
        .iter()
        .map(|a| (a.id.clone(), (a.max_concurrency, a.rate)))
        .collect();
    let index: HashMap<usize, String> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.id.clone()))
        .collect();
    let mut now = Duration::ZERO;
    let mut running: VecDeque<(Duration, usize)> = VecDeque::new();
    let mut starts: HashMap<String, Vec<Duration>> = HashMap::new();
    let mut placed = 0;
    let mut seen_high_after_normal = false;
    let mut normal_started = false;
    while placed < tasks {
        while let Some(p) = d.place() {
            placed += 1;
            let id = &index[&p.agent];
            starts.entry(id.clone()).or_default().push(now);
            running.push_back((now + work, p.agent));
            if p.task.priority == Priority::High && normal_started {
                seen_high_after_normal = true;
            }
            normal_started |= p.task.priority == Priority::Normal;
            // Invariant: no agent ever has more in flight than its max_concurrency.
            for (spec, in_flight) in d.agents() {
                assert!(
                    in_flight <= limits[&spec.id].0,
                    "{} has {in_flight} in flight",
                    spec.id
                );
            }
        }
        // Advance fake time to the next completion or rate-limit expiry.
        let next_done = running.iter().map(|r| r.0).min();
        let next_rate = d.rate_wait().map(|w| now + w);
        let next = match (next_done, next_rate) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => panic!("{} tasks wait but nothing will free them", tasks - placed),
        };
        clock.advance(next.saturating_sub(now));
        now = next;
        running.retain(|&(done, agent)| {
            if done <= now {
                d.release(agent);
                false
            } else {
                true
            }
        });
    }
    assert_eq!(d.waiting(), 0);
    assert!(!seen_high_after_normal, "high-priority tasks go first");
    // Invariant: no agent starts more than `rate` tasks in any one-second window.
    for (id, times) in &starts {
        if let Some(rate) = limits[id].1 {
            for (i, t) in times.iter().enumerate() {
                let in_window = times[i..]
                    .iter()
                    .take_while(|u| **u < *t + Duration::from_secs(1))
                    .count();
                assert!(
                    in_window as f64 <= rate.ceil(),
                    "{id} started {in_window} tasks within 1s of {t:?} (rate {rate})"
                );
            }
        }
    }
    starts
}

#[test]
fn concurrency_and_rate_limits_hold_under_a_burst_of_1000_tasks() {
    let agents = vec![
        AgentSpec::new("fast", Role::Worker)
            .with_capabilities(["shell"])
            .with_limits(4, Some(50.0)),
        AgentSpec::new("slow", Role::Specialist)
            .with_capabilities(["shell"])
            .with_limits(2, Some(5.0)),
        AgentSpec::new("open", Role::Worker)
            .with_capabilities(["shell"])
            .with_limits(3, None),
    ];
    let starts = burst(agents, 1000, Duration::from_millis(30));
    let total: usize = starts.values().map(Vec::len).sum();
    assert_eq!(total, 1000, "every task was placed exactly once");
    assert!(
        starts.len() == 3,
        "work spreads over every agent: {:?}",
        starts.keys()
    );
}

#[test]
fn a_rate_limit_alone_paces_starts() {
    let agents = vec![AgentSpec::new("paced", Role::Worker)
        .with_capabilities(["shell"])
        .with_limits(1000, Some(10.0))];
    let starts = burst(agents, 1000, Duration::from_millis(1));
    let times = &starts["paced"];
    assert_eq!(times.len(), 1000);
    // 1000 starts at 10 per second take (almost exactly) 100 seconds of fake time.
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= Duration::from_secs(99) && span <= Duration::from_secs(100),
        "{span:?}"
    );
}

#[test]
fn a_concurrency_limit_alone_keeps_work_waiting_in_order() {
    let agents = vec![AgentSpec::new("one", Role::Worker)
        .with_capabilities(["shell"])
        .with_limits(1, None)];
    let starts = burst(agents, 1000, Duration::from_millis(5));
    let times = &starts["one"];
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(5),
            "one slot means one task at a time"
        );
    }
}
