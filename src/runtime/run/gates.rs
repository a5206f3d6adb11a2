//! Gates of one run: a result is checked by the gate actors, one gate after another, in the
//! plan's order (a manual gate is decided by a person after the others have passed); the
//! verdicts become `gate.passed` / `gate.failed` events and the task succeeds, waits for a
//! decision, or fails.

use super::{Coordinator, Mode};
use crate::domain::event::{payload, EventData};
use crate::domain::plan::GateSpec;
use crate::domain::{FailureKind, TaskStatus};
use crate::runtime::messages::{AttemptError, CheckGate, Verdict};
use crate::tools::ToolOutput;
use actix::prelude::*;
use serde_json::Value;

/// A verdict for a gate that could not be checked.
fn unjudged(reason: String) -> Verdict {
    Verdict {
        passed: false,
        reason,
        detail: Value::Null,
        error_type: None,
    }
}

/// What the verdicts of a task's automatic gates (numbered by their place in the plan, from
/// 1) decide, and the manual gate that follows when they all passed.
#[derive(Debug, PartialEq)]
enum Decision {
    Succeed,
    /// Wait for a person's decision on the manual gate numbered so.
    Approve(usize, GateSpec),
    Fail(String, FailureKind),
}

fn decide(gates: &[GateSpec], numbers: &[usize], verdicts: &[Verdict]) -> Decision {
    for (g, v) in verdicts.iter().enumerate() {
        if !v.passed {
            let message = format!(
                "gate #{} ({}) failed: {}",
                numbers[g],
                gates[numbers[g] - 1].kind(),
                v.reason
            );
            return Decision::Fail(message, v.error_type.unwrap_or(FailureKind::Gate));
        }
    }
    match gates
        .iter()
        .enumerate()
        .find(|(_, g)| matches!(g, GateSpec::Manual { .. }))
    {
        Some((n, g)) => Decision::Approve(n + 1, g.clone()),
        None => Decision::Succeed,
    }
}

/// The automatic gates of a task with their numbers.
fn automatic(gates: &[GateSpec]) -> (Vec<usize>, Vec<GateSpec>) {
    gates
        .iter()
        .enumerate()
        .filter(|(_, g)| !matches!(g, GateSpec::Manual { .. }))
        .map(|(n, g)| (n + 1, g.clone()))
        .unzip()
}

impl Coordinator {
    /// Has the gates check task `i`'s result, stopping at the first that fails.
    pub(super) fn check_gates(&mut self, i: usize, output: ToolOutput, ctx: &mut Context<Self>) {
        let (_, gates) = automatic(&self.state.graph().task(i).gates);
        let actors = self.s.gates.clone();
        let corr = self.corr(Some(i));
        let workspace = self.s.workspace.clone();
        let cancel = self.state.task(i).cancel.clone().unwrap_or_default();
        let outputs = output.outputs.clone();
        let attempt = self.state.task(i).attempt;
        let models = self.model_access(i, "gate", ctx);
        let fut = async move {
            let mut verdicts = Vec::with_capacity(gates.len());
            for gate in gates {
                let kind = gate.kind();
                let verdict = match actors.get(kind) {
                    None => unjudged(format!("no gate actor for `{kind}`")),
                    Some(a) => a
                        .send(CheckGate {
                            models: models.clone(),
                            corr: corr.clone(),
                            gate,
                            outputs: outputs.clone(),
                            workspace: workspace.clone(),
                            attempt,
                            cancel: cancel.clone(),
                        })
                        .await
                        .unwrap_or_else(|e| unjudged(format!("gate actor failed: {e}"))),
                };
                let passed = verdict.passed;
                verdicts.push(verdict);
                if !passed {
                    break;
                }
            }
            verdicts
        };
        ctx.spawn(fut.into_actor(self).map(move |verdicts, act, ctx| {
            if act.mode == Mode::Halted || act.state.task(i).status != TaskStatus::Running {
                return;
            }
            act.gates_done(i, output, verdicts, ctx);
        }));
        self.flush(ctx, None);
    }

    fn gates_done(
        &mut self,
        i: usize,
        output: ToolOutput,
        verdicts: Vec<Verdict>,
        ctx: &mut Context<Self>,
    ) {
        let graph = self.state.graph().clone();
        let all = &graph.task(i).gates;
        let (numbers, _) = automatic(all);
        let attempt = self.state.task(i).attempt;
        for (g, v) in verdicts.iter().enumerate() {
            let result = payload::GateResult {
                gate: numbers[g],
                kind: all[numbers[g] - 1].kind().to_string(),
                reason: v.reason.clone(),
                detail: v.detail.clone(),
                attempt,
            };
            self.emit(
                Some(i),
                if v.passed {
                    EventData::GatePassed(result)
                } else {
                    EventData::GateFailed(result)
                },
            );
        }
        match decide(all, &numbers, &verdicts) {
            Decision::Succeed => self.succeed(i, output, ctx),
            Decision::Approve(number, gate) => self.request_approval(i, number, &gate, output, ctx),
            Decision::Fail(message, kind) => {
                let err = AttemptError {
                    kind,
                    message,
                    outputs: output.outputs,
                    artifacts: output.artifacts,
                };
                self.fail(i, err, ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::OnTimeout;

    fn verdict(passed: bool, error_type: Option<FailureKind>) -> Verdict {
        Verdict {
            passed,
            reason: if passed { "ok" } else { "no match" }.into(),
            detail: Value::Null,
            error_type,
        }
    }

    fn gates() -> Vec<GateSpec> {
        vec![
            GateSpec::Pattern {
                output: "x".into(),
                regex: "a".into(),
            },
            GateSpec::Manual {
                approvers: vec!["ann".into()],
                timeout_s: None,
                on_timeout: OnTimeout::Reject,
            },
            GateSpec::Pattern {
                output: "y".into(),
                regex: "b".into(),
            },
        ]
    }

    #[test]
    fn automatic_gates_keep_their_numbers_in_the_plan() {
        assert_eq!(automatic(&gates()).0, [1, 3]);
    }

    #[test]
    fn the_first_failed_gate_fails_the_task_as_its_kind_says() {
        let g = gates();
        assert_eq!(
            decide(&g, &[1, 3], &[verdict(true, None), verdict(false, None)]),
            Decision::Fail(
                "gate #3 (pattern) failed: no match".into(),
                FailureKind::Gate
            )
        );
        assert_eq!(
            decide(
                &g,
                &[1, 3],
                &[verdict(false, Some(FailureKind::BudgetExceeded))]
            ),
            Decision::Fail(
                "gate #1 (pattern) failed: no match".into(),
                FailureKind::BudgetExceeded
            )
        );
    }

    #[test]
    fn passed_gates_go_on_to_the_manual_gate_or_succeed() {
        let g = gates();
        let passed = [verdict(true, None), verdict(true, None)];
        assert_eq!(
            decide(&g, &[1, 3], &passed),
            Decision::Approve(2, g[1].clone())
        );
        let without_manual = vec![g[0].clone()];
        assert_eq!(
            decide(&without_manual, &[1], &passed[..1]),
            Decision::Succeed
        );
    }
}
