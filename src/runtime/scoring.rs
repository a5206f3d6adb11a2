//! Agent scoring, exactly as specified: +10 per required capability the agent has; +20 when
//! task complexity is high and the agent is a coordinator, or low and it is a worker; +15 when
//! the agent has affinity with the parent agent; −5 per task in flight on the agent. Only
//! agents with every required capability are eligible; ties break by agent id.

use crate::domain::{AgentSpec, Complexity, Role};

/// What scoring needs to know about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNeeds {
    /// Required capabilities.
    pub capabilities: Vec<String>,
    /// Complexity.
    pub complexity: Complexity,
    /// The parent agent: the agent that ran the task's first dependency, if any.
    pub parent_agent: Option<String>,
}

pub use crate::domain::event::payload::Candidate;

/// The score of an eligible agent (`None` when it lacks a required capability): 10 per
/// required capability, 20 for a role that fits the complexity (a coordinator for high, a
/// worker for low), 15 for affinity with the parent agent, minus 5 per task in flight.
pub fn score(agent: &AgentSpec, in_flight: u32, task: &TaskNeeds) -> Option<i64> {
    if !agent.has_all(&task.capabilities) {
        return None;
    }
    let mut s = 10 * task.capabilities.len() as i64;
    s += match (task.complexity, agent.role) {
        (Complexity::High, Role::Coordinator) | (Complexity::Low, Role::Worker) => 20,
        _ => 0,
    };
    if let Some(parent) = &task.parent_agent {
        if agent.affinity.iter().any(|a| a == parent) {
            s += 15;
        }
    }
    s -= 5 * i64::from(in_flight);
    Some(s)
}

/// Orders candidates best first: higher score, then lower agent id.
pub fn rank(cands: &mut [(usize, i64, &str)]) {
    cands.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(b.2)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(caps: &[&str], c: Complexity, parent: Option<&str>) -> TaskNeeds {
        TaskNeeds {
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            complexity: c,
            parent_agent: parent.map(str::to_string),
        }
    }

    #[test]
    fn agents_without_every_capability_are_not_eligible() {
        let a = AgentSpec::new("a", Role::Worker).with_capabilities(["shell"]);
        assert_eq!(
            score(&a, 0, &needs(&["shell", "gpu"], Complexity::Medium, None)),
            None
        );
    }

    #[test]
    fn role_bonus_follows_complexity() {
        let c = AgentSpec::new("c", Role::Coordinator);
        let w = AgentSpec::new("w", Role::Worker);
        let s = AgentSpec::new("s", Role::Specialist);
        let high = needs(&[], Complexity::High, None);
        let low = needs(&[], Complexity::Low, None);
        assert_eq!(score(&c, 0, &high), Some(20));
        assert_eq!(score(&w, 0, &high), Some(0));
        assert_eq!(score(&w, 0, &low), Some(20));
        assert_eq!(score(&s, 0, &low), Some(0));
        assert_eq!(score(&s, 3, &low), Some(-15));
    }

    #[test]
    fn capabilities_role_and_affinity_add_up_and_load_takes_away() {
        let w = AgentSpec::new("w", Role::Worker)
            .with_capabilities(["shell"])
            .with_affinity(["lead"]);
        let task = needs(&["shell"], Complexity::Low, Some("lead"));
        assert_eq!(score(&w, 2, &task), Some(10 + 20 + 15 - 10));
    }

    #[test]
    fn ties_break_by_agent_id() {
        let mut c = vec![(0, 5, "b"), (1, 5, "a"), (2, 7, "z")];
        rank(&mut c);
        assert_eq!(
            c.iter().map(|x| x.2).collect::<Vec<_>>(),
            vec!["z", "a", "b"]
        );
    }
}
