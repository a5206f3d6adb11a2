//! The supervisor's decisions, without actix: a queue of waiting tasks ordered by priority
//! then arrival, per-agent slots (`max_concurrency`) and per-agent rate limiters (governor),
//! generic over governor's clock so tests drive time by hand. Work that cannot be placed
//! waits in order; it is never dropped.

use super::scoring::{self, TaskNeeds};
use crate::domain::event::payload::{Candidate, PassedOver};
use crate::domain::{AgentSpec, Priority, RunId};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct Slot<C: Clock> {
    spec: AgentSpec,
    in_flight: u32,
    limiter: Option<Limiter<C>>,
}

/// A task waiting for an agent.
#[derive(Debug)]
pub struct Waiting<T> {
    /// Its run.
    pub run: RunId,
    /// Priority.
    pub priority: Priority,
    /// What scoring needs.
    pub needs: TaskNeeds,
    /// What the caller wants back with the decision.
    pub payload: T,
}

/// A placement: which agent (by index) takes the task, and every candidate's score.
#[derive(Debug)]
pub struct Placement<T> {
    /// The task.
    pub task: Waiting<T>,
    /// Index of the chosen agent.
    pub agent: usize,
    /// Every eligible agent's score.
    pub candidates: Vec<Candidate>,
}

/// Waiting tasks of one capability set, by (priority, arrival).
type Group<T> = BTreeMap<(Reverse<Priority>, u64), Waiting<T>>;

/// Queue, slots and limiters.
pub struct Dispatcher<C: Clock, T> {
    clock: C,
    slots: Vec<Slot<C>>,
    /// Waiting tasks grouped by capability set, each group ordered by (priority, arrival).
    groups: BTreeMap<Vec<String>, Group<T>>,
    eligible: HashMap<Vec<String>, Vec<usize>>,
    arrivals: u64,
    waiting: usize,
    rate_wait: Option<Duration>,
}

impl<C: Clock + Clone, T> Dispatcher<C, T> {
    /// A dispatcher over `agents`, reading time from `clock`.
    pub fn new(agents: Vec<AgentSpec>, clock: C) -> Self {
        let slots = agents
            .into_iter()
            .map(|spec| {
                let limiter = spec.rate.and_then(|r| {
                    Quota::with_period(Duration::from_secs_f64(1.0 / r))
                        .map(|q| RateLimiter::direct_with_clock(q, clock.clone()))
                });
                Slot {
                    spec,
                    in_flight: 0,
                    limiter,
                }
            })
            .collect();
        Self {
            clock,
            slots,
            groups: BTreeMap::new(),
            eligible: HashMap::new(),
            arrivals: 0,
            waiting: 0,
            rate_wait: None,
        }
    }

    /// The agents with their tasks in flight, by index.
    pub fn agents(&self) -> impl Iterator<Item = (&AgentSpec, u32)> {
        self.slots.iter().map(|s| (&s.spec, s.in_flight))
    }

    /// Tasks waiting.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Tasks in flight on all agents.
    pub fn in_flight(&self) -> u32 {
        self.slots.iter().map(|s| s.in_flight).sum()
    }

    /// Adds a task at the back of its priority.
    pub fn enqueue(&mut self, task: Waiting<T>) {
        let id = self.arrivals;
        self.arrivals += 1;
        let mut caps = task.needs.capabilities.clone();
        caps.sort();
        caps.dedup();
        self.groups
            .entry(caps)
            .or_default()
            .insert((Reverse(task.priority), id), task);
        self.waiting += 1;
    }

    /// Frees a slot of agent `agent`.
    pub fn release(&mut self, agent: usize) {
        if let Some(s) = self.slots.get_mut(agent) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }

    /// Removes every waiting task of `run`; returns them.
    pub fn withdraw(&mut self, run: RunId) -> Vec<Waiting<T>> {
        let mut out = Vec::new();
        for group in self.groups.values_mut() {
            let keys: Vec<_> = group
                .iter()
                .filter(|(_, w)| w.run == run)
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some(w) = group.remove(&k) {
                    out.push(w);
                }
            }
        }
        self.waiting -= out.len();
        self.groups.retain(|_, g| !g.is_empty());
        out
    }

    fn eligible_for(&mut self, caps: &[String]) -> Vec<usize> {
        if let Some(e) = self.eligible.get(caps) {
            return e.clone();
        }
        let e: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.spec.has_all(caps))
            .map(|(i, _)| i)
            .collect();
        self.eligible.insert(caps.to_vec(), e.clone());
        e
    }

    /// The next placement that can be made now: among the heads of the capability groups,
    /// the first by (priority, arrival) that has an eligible agent with a free slot and rate
    /// budget goes to the best-scored such agent. `None` when nothing can be placed now; then
    /// `rate_wait` says when a rate limit that held a task back lifts.
    pub fn place(&mut self) -> Option<Placement<T>> {
        self.rate_wait = None;
        let mut heads: Vec<(Reverse<Priority>, u64, Vec<String>)> = self
            .groups
            .iter()
            .filter_map(|(caps, g)| g.keys().next().map(|k| (k.0, k.1, caps.clone())))
            .collect();
        heads.sort();
        for (prio, id, caps) in heads {
            let eligible = self.eligible_for(&caps);
            let needs = &self.groups.get(&caps)?.get(&(prio, id))?.needs;
            let mut ranked: Vec<(usize, i64, &str)> = Vec::with_capacity(eligible.len());
            for &i in &eligible {
                let s = &self.slots[i];
                if let Some(score) = scoring::score(&s.spec, s.in_flight, needs) {
                    ranked.push((i, score, s.spec.id.as_str()));
                }
            }
            scoring::rank(&mut ranked);
            let ranked: Vec<(usize, i64)> = ranked.into_iter().map(|(i, s, _)| (i, s)).collect();
            let mut chosen = None;
            // Why the better-ranked agents were passed over.
            let mut passed: Vec<(usize, PassedOver)> = Vec::new();
            for &(i, _) in &ranked {
                let s = &self.slots[i];
                if s.in_flight >= s.spec.max_concurrency {
                    passed.push((i, PassedOver::Busy));
                    continue;
                }
                if let Some(l) = &s.limiter {
                    if let Err(not_until) = l.check() {
                        let wait = not_until.wait_time_from(self.clock.now());
                        self.rate_wait = Some(self.rate_wait.map_or(wait, |w| w.min(wait)));
                        passed.push((i, PassedOver::RateLimited));
                        continue;
                    }
                }
                chosen = Some(i);
                break;
            }
            let Some(agent) = chosen else { continue };
            let candidates = ranked
                .iter()
                .map(|&(i, score)| {
                    let s = &self.slots[i];
                    let skipped = passed.iter().find(|(j, _)| *j == i).map(|(_, why)| *why);
                    Candidate {
                        agent: s.spec.id.clone(),
                        score,
                        in_flight: s.in_flight,
                        available: skipped.is_none() && s.in_flight < s.spec.max_concurrency,
                        skipped,
                    }
                })
                .collect();
            self.slots[agent].in_flight += 1;
            let group = self.groups.get_mut(&caps)?;
            let task = group.remove(&(prio, id))?;
            if group.is_empty() {
                self.groups.remove(&caps);
            }
            self.waiting -= 1;
            self.rate_wait = None;
            return Some(Placement {
                task,
                agent,
                candidates,
            });
        }
        None
    }

    /// After `place` returned `None`: how long until a rate limit that held a task back lifts.
    pub fn rate_wait(&self) -> Option<Duration> {
        self.rate_wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::Complexity;
    use crate::domain::Role;
    use governor::clock::FakeRelativeClock;

    fn task(run: RunId, caps: &[&str], priority: Priority, n: u32) -> Waiting<u32> {
        Waiting {
            run,
            priority,
            needs: TaskNeeds {
                capabilities: caps.iter().map(|s| s.to_string()).collect(),
                complexity: Complexity::Medium,
                parent_agent: None,
            },
            payload: n,
        }
    }

    #[test]
    fn higher_priority_goes_first_then_arrival_order() {
        let run = RunId::new();
        let mut d = Dispatcher::new(
            vec![AgentSpec::new("a", Role::Worker)],
            FakeRelativeClock::default(),
        );
        d.enqueue(task(run, &[], Priority::Normal, 1));
        d.enqueue(task(run, &[], Priority::High, 2));
        d.enqueue(task(run, &[], Priority::Normal, 3));
        let mut order = Vec::new();
        while let Some(p) = d.place() {
            order.push(p.task.payload);
            d.release(p.agent);
        }
        assert_eq!(order, vec![2, 1, 3]);
    }

    #[test]
    fn a_blocked_group_does_not_hold_back_another() {
        let run = RunId::new();
        let agents = vec![
            AgentSpec::new("gpu", Role::Specialist).with_capabilities(["gpu"]),
            AgentSpec::new("cpu", Role::Worker).with_capabilities(["cpu"]),
        ];
        let mut d = Dispatcher::new(agents, FakeRelativeClock::default());
        d.enqueue(task(run, &["gpu"], Priority::Normal, 1));
        d.enqueue(task(run, &["gpu"], Priority::Normal, 2));
        d.enqueue(task(run, &["cpu"], Priority::Normal, 3));
        let a = d.place().unwrap();
        let b = d.place().unwrap();
        assert_eq!((a.task.payload, b.task.payload), (1, 3));
        assert!(d.place().is_none());
        assert_eq!(d.waiting(), 1);
    }

    #[test]
    fn a_rate_limited_agent_is_reported_as_skipped_and_not_available() {
        let run = RunId::new();
        // `fast` ranks first (affinity) but allows one start a second.
        let fast = AgentSpec::new("fast", Role::Worker)
            .with_limits(4, Some(1.0))
            .with_affinity(["lead"]);
        let slow = AgentSpec::new("slow", Role::Specialist).with_limits(4, None);
        let mut d = Dispatcher::new(vec![fast, slow], FakeRelativeClock::default());
        for n in [1, 2] {
            let mut t = task(run, &[], Priority::Normal, n);
            t.needs.parent_agent = Some("lead".into());
            d.enqueue(t);
        }
        let first = d.place().unwrap();
        assert_eq!(d.slots[first.agent].spec.id, "fast");
        let second = d.place().unwrap();
        assert_eq!(d.slots[second.agent].spec.id, "slow");
        let fast = second
            .candidates
            .iter()
            .find(|c| c.agent == "fast")
            .unwrap();
        assert_eq!(
            (fast.available, fast.skipped),
            (false, Some(PassedOver::RateLimited))
        );
    }

    #[test]
    fn withdraw_removes_only_that_run() {
        let (r1, r2) = (RunId::new(), RunId::new());
        let mut d: Dispatcher<_, u32> = Dispatcher::new(vec![], FakeRelativeClock::default());
        d.enqueue(task(r1, &[], Priority::Normal, 1));
        d.enqueue(task(r2, &[], Priority::Normal, 2));
        assert_eq!(
            d.withdraw(r1)
                .into_iter()
                .map(|w| w.payload)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(d.waiting(), 1);
    }
}
