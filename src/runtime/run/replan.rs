//! What the decomposing agent's model does for a decomposed task after its subtasks ran: an
//! `llm` merge (the subtasks' results, by subtask id, merged following the task's
//! `instructions`) and a replan (a subtask failed and `replan.max` allows another round: the
//! model gets the sub-plan, the results so far and the failure, and writes subtasks that
//! replace the unfinished part, checked like any sub-plan and committed before any of them
//! runs). The model call runs beside the coordinator; its answer comes back to it.

use super::hierarchy::Round;
use super::{Coordinator, Mode};
use crate::domain::event::payload::{self, SubtaskFailure};
use crate::domain::event::EventData;
use crate::domain::plan::{Form, Source};
use crate::domain::{FailureKind, TaskStatus};
use crate::models::{Ask, Message};
use crate::planner::{self, PlannerError, PlannerOptions};
use crate::runtime::messages::AttemptError;
use crate::tools::decompose::Planning;
use crate::tools::{ModelAccess, ToolError, ToolOutput};
use actix::prelude::*;
use serde_json::{json, Map, Value};

impl Coordinator {
    /// Model access for decomposed task `p`'s agent (its `model` preferred), calling as
    /// `tool`.
    fn decomposer_models(&self, p: usize, tool: &str, ctx: &Context<Self>) -> ModelAccess {
        let access = self.model_access(p, tool, ctx);
        let agent = self.state.task(p).agent.as_deref();
        match self
            .s
            .shared
            .agents
            .iter()
            .find(|a| Some(a.id.as_str()) == agent)
        {
            Some(spec) => access.for_agent(spec),
            None => access,
        }
    }

    /// Whether a failed subtask of `p` is met by another round of its sub-plan.
    pub(super) fn may_replan(&self, p: usize) -> bool {
        let graph = self.state.graph();
        let allowed = graph.decompose(p).map_or(0, |d| d.replan_rounds());
        graph.rounds(p).saturating_sub(1) < allowed
    }

    /// `p`'s results merged by its agent's model following `instructions`: `merged` (by
    /// subtask id, with `partial` and `failures` when collected) is what the model reads.
    pub(super) fn merge_by_model(
        &mut self,
        p: usize,
        instructions: &str,
        merged: Map<String, Value>,
        failed: Vec<SubtaskFailure>,
        ctx: &mut Context<Self>,
    ) {
        self.state.set_busy(p, true);
        let key = self.state.key(p).to_string();
        let access = self.decomposer_models(p, "decompose:merge", ctx);
        let ask = Ask {
            system: Some(format!(
                "You merge the results of the subtasks of task `{key}` into one answer.\n{instructions}"
            )),
            messages: vec![Message::user(format!(
                "The subtasks' results, by subtask id:\n{}",
                Value::Object(merged.clone())
            ))],
            max_tokens: 4096,
            temperature: Some(0.0),
            requires_reasoning: false,
            tools: Vec::new(),
            model: None,
        };
        let call =
            async move { crate::tools::llm::ask_structured(&access, ask, None, "merge").await };
        ctx.spawn(call.into_actor(self).map(move |res, act, ctx| {
            act.state.set_busy(p, false);
            if act.mode != Mode::Running || act.state.task(p).status != TaskStatus::Running {
                return;
            }
            match res {
                Err(e) => act.fail(p, AttemptError::from(e), ctx),
                Ok(answer) => {
                    let mut outputs = Map::new();
                    outputs.insert("text".into(), json!(answer.text));
                    for k in ["partial", "failures"] {
                        if let Some(v) = merged.get(k) {
                            outputs.insert(k.into(), v.clone());
                        }
                    }
                    answer.usage_outputs(&mut outputs);
                    act.merged(p, "llm", failed, outputs, ctx);
                }
            }
            act.flush(ctx, None);
        }));
    }

    /// Records `task.merged` and ends decomposed task `p` with `outputs` (through its gates).
    pub(super) fn merged(
        &mut self,
        p: usize,
        merge: &str,
        failed: Vec<SubtaskFailure>,
        outputs: Map<String, Value>,
        ctx: &mut Context<Self>,
    ) {
        let count = self
            .state
            .group(p)
            .map_or(0, |g| g.children.len() - g.failed.len());
        self.emit(
            Some(p),
            EventData::TaskMerged(payload::TaskMerged {
                merge: merge.into(),
                subtasks: count,
                partial: !failed.is_empty(),
                failed,
            }),
        );
        let output = ToolOutput {
            outputs,
            artifacts: Vec::new(),
        };
        if self.state.graph().task(p).gates.is_empty() {
            self.succeed(p, output, ctx);
        } else {
            self.check_gates(p, output, ctx);
        }
    }

    /// A replan of `p` that could not be made or committed fails it.
    fn fail_replan(&mut self, p: usize, e: AttemptError, ctx: &mut Context<Self>) {
        self.fail(p, e, ctx);
        self.flush(ctx, None);
    }

    /// Another round of `p`'s sub-plan after a subtask failed (`reason`): the unfinished
    /// subtasks were cancelled; the agent's model writes their replacement.
    pub(super) fn replan(&mut self, p: usize, reason: String, ctx: &mut Context<Self>) {
        let graph = self.state.graph().clone();
        let Some(g) = self.state.group(p) else {
            return;
        };
        let key = graph.task(p).key.to_string();
        let local = |c: usize| graph.task(c).key.as_str()[key.len() + 1..].to_string();
        let (mut finished, mut unfinished, mut sub_plan) = (Map::new(), Vec::new(), Vec::new());
        for &c in &g.children {
            let t = self.state.task(c);
            let mut spec = graph.spec(c).clone();
            spec.id = local(c);
            spec.depends_on = spec
                .depends_on
                .iter()
                .map(|d| d.rsplit('.').next().unwrap_or(d).to_string())
                .collect();
            sub_plan.push(spec);
            if t.status == TaskStatus::Succeeded {
                finished.insert(local(c), t.outputs.clone().unwrap_or(Value::Null));
            } else {
                unfinished.push(graph.task(c).key.to_string());
            }
        }
        // Ids of every round stay taken: a replacement needs ids of its own.
        let taken: Vec<String> = (0..graph.len())
            .filter(|&j| graph.task(j).parent == Some(p))
            .map(local)
            .collect();
        let Some(d) = graph.decompose(p) else {
            return;
        };
        let goal = match d.form() {
            Ok(Form::Planner { goal }) => goal.to_string(),
            _ => format!("complete task `{key}`"),
        };
        let limit = self.s.shared.options.limits.max_subtasks;
        let planning = Planning {
            parent: key.clone(),
            goal: goal.clone(),
            plan: graph.plan().clone(),
            inputs: self.s.inputs.clone(),
            names: self.scope_names(p, true),
            most: d.max_subtasks.map_or(limit, |m| m.min(limit)),
        };
        let round = graph.rounds(p) + 1;
        let request = format!(
            "{}\nRound {round}: the sub-plan below ran and subtask results came back, but this failed:\n{reason}\n\n\
             Write a plan whose tasks replace the unfinished subtasks ({}). Finished subtasks keep their results; \
             a task may use them with `${{tasks.ID.outputs.NAME}}`. Ids already used (do not reuse them): {}.\n\n\
             The sub-plan so far:\n{}\n\nResults of finished subtasks:\n{}\n",
            planner::subplan_request(&key, &goal, &Value::Object(Map::new()), &[], planning.most),
            unfinished.join(", "),
            taken.join(", "),
            serde_json::to_string(&sub_plan).unwrap_or_default(),
            Value::Object(finished),
        );
        self.state.set_busy(p, true);
        let access = self.decomposer_models(p, "decompose:replan", ctx);
        let shared = self.s.shared.clone();
        let call = async move {
            let system = planner::system_prompt(&shared.tools, &shared.agents);
            let complete = |a: Ask| {
                let access = access.clone();
                async move { access.complete(&a).await }
            };
            planner::ask_until_valid(
                complete,
                system,
                request,
                PlannerOptions::default(),
                |src| {
                    if let Some(t) = src.plan.tasks.iter().find(|t| taken.contains(&t.id)) {
                        return Err(format!(
                            "task id `{}` is already used in this sub-plan; choose a new one",
                            t.id
                        ));
                    }
                    planning
                        .check(&src.plan.tasks, &shared.tools, &shared.agents)
                        .map(|()| src.plan.tasks.clone())
                },
            )
            .await
        };
        ctx.spawn(call.into_actor(self).map(move |res, act, ctx| {
            act.state.set_busy(p, false);
            if act.mode != Mode::Running || act.state.task(p).status != TaskStatus::Running {
                return;
            }
            let specs = match res {
                Ok((_, specs, _, _)) => specs,
                Err(PlannerError::Call(e)) => {
                    return act.fail_replan(p, AttemptError::from(ToolError::from(e)), ctx)
                }
                Err(e) => {
                    let msg = format!(
                        "replan round {round} of `{}`: {e} (after: {reason})",
                        act.state.key(p)
                    );
                    return act.fail_replan(p, AttemptError::new(FailureKind::Tool, msg), ctx);
                }
            };
            let names = act.scope_names(p, true);
            let round = Round {
                source: Source::Planner,
                replaced: unfinished,
                reason: Some(reason),
            };
            let done = act
                .check_subplan(p, specs, &names)
                .and_then(|specs| act.commit_round(p, specs, round, ctx));
            if let Err(why) = done {
                return act.fail_replan(p, AttemptError::new(FailureKind::Input, why), ctx);
            }
            act.state.resettle(p);
            act.flush(ctx, None);
        }));
    }
}
