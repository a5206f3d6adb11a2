//! Property tests over inputs that vary: references, plan graphs, scoring and manifests.

use crate::domain::plan::{validate, PlanError};
use crate::domain::plan::{Complexity, PlanSource};
use crate::domain::reference::{self, Lookup};
use crate::runtime::scoring::{score, TaskNeeds};
use crate::{AgentSpec, Role};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::domain::plan::testing::Echo as Tools;

struct Empty;
impl Lookup for Empty {
    fn input(&self, _: &str) -> Option<&Value> {
        None
    }
    fn outputs(&self, _: &str) -> Option<&Value> {
        None
    }
}

fn plan_with_edges(n: usize, edges: &[(usize, usize)]) -> PlanSource {
    let mut yaml = String::from("name: p\ntasks:\n");
    for i in 0..n {
        let deps: Vec<String> = edges
            .iter()
            .filter(|(_, to)| *to == i)
            .map(|(from, _)| format!("t{from}"))
            .collect();
        yaml.push_str(&format!(
            "  - {{ id: t{i}, tool: test:echo, depends_on: [{}] }}\n",
            deps.join(", ")
        ));
    }
    PlanSource::parse(&yaml, crate::domain::plan::Format::Yaml, None).unwrap()
}

proptest! {
    #[test]
    fn text_without_references_is_left_as_written(s in "[a-zA-Z0-9 ${}._-]{0,40}") {
        prop_assume!(!s.contains("${inputs.") && !s.contains("${tasks.") && !s.contains("$${"));
        let v = reference::resolve(&json!(s.clone()), &Empty, reference::all).unwrap();
        prop_assert_eq!(v, json!(s));
    }

    #[test]
    fn forward_edges_always_make_a_valid_dag(n in 1usize..30, raw in proptest::collection::vec((0usize..30, 0usize..30), 0..60)) {
        let edges: Vec<(usize, usize)> = raw.into_iter().filter(|(a, b)| a < b && *b < n).collect();
        let v = validate(&plan_with_edges(n, &edges), &Map::new(), &Tools, &[]).unwrap();
        prop_assert_eq!(v.graph.len(), n);
        let roots = v.graph.in_degrees().iter().filter(|d| **d == 0).count();
        prop_assert!(roots >= 1);
    }

    #[test]
    fn a_back_edge_is_reported_as_a_cycle_naming_its_tasks(n in 2usize..20, a in 0usize..20, b in 0usize..20) {
        let (lo, hi) = (a.min(b) % n, a.max(b) % n);
        prop_assume!(lo < hi);
        // A chain lo -> … -> hi, closed by hi -> lo.
        let mut edges: Vec<(usize, usize)> = (lo..hi).map(|i| (i, i + 1)).collect();
        edges.push((hi, lo));
        let errs = validate(&plan_with_edges(n, &edges), &Map::new(), &Tools, &[]).unwrap_err();
        let cycle = errs.0.iter().find_map(|e| match &e.error { PlanError::Cycle(c) => Some(c.clone()), _ => None }).unwrap();
        for i in lo..=hi {
            let name = format!("t{i}");
            prop_assert!(cycle.contains(&name), "{} missing from {:?}", name, cycle);
        }
        prop_assert_eq!(cycle.first(), cycle.last());
    }

    #[test]
    fn score_drops_by_five_per_task_in_flight(caps in proptest::collection::vec("[a-c]", 0..3), load in 0u32..50, role in 0u8..3, cx in 0u8..3) {
        let role = [Role::Coordinator, Role::Specialist, Role::Worker][role as usize];
        let complexity = [Complexity::Low, Complexity::Medium, Complexity::High][cx as usize];
        let agent = AgentSpec::new("a", role).with_capabilities(["a", "b", "c"]);
        let needs = TaskNeeds { capabilities: caps.clone(), complexity, parent_agent: None };
        let idle = score(&agent, 0, &needs).unwrap();
        prop_assert_eq!(score(&agent, load, &needs).unwrap(), idle - 5 * i64::from(load));
        prop_assert!(idle >= 10 * caps.len() as i64);
        let lacking = AgentSpec::new("b", role);
        prop_assert_eq!(score(&lacking, 0, &needs).is_none(), !caps.is_empty());
    }

    #[test]
    fn manifests_accept_exactly_the_valid_limits(max in -5i64..10, rate in -2.0f64..5.0) {
        let text = format!("id = \"a\"\nrole = \"worker\"\nmax_concurrency = {max}\nrate = {rate:?}\n");
        let parsed = crate::config::parse_agent(&text, "a.toml");
        let valid = max >= 1 && rate > 0.0;
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", parsed);
        if let Err(errs) = parsed {
            for e in errs {
                let s = e.to_string();
                prop_assert!(s.starts_with("a.toml:3:") || s.starts_with("a.toml:4:"), "{}", s);
            }
        }
    }
}
