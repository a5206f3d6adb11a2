//! Decomposed tasks. The agent that takes a task with `decompose` accepts it (or, with a
//! planner, writes its sub-plan); the coordinator then makes the sub-plan (a static list, one
//! subtask per item of a list), checks it against the limits and with the plan check, and
//! commits it — the decomposition row, the subtasks' rows and `task.decomposed` in one
//! transaction — before any subtask is handed out. The task stays running while its
//! subtasks run; once they have ended their results merge into its outputs (`task.merged`)
//! and it succeeds (through its gates), or it fails when a subtask fails (`fail`: the
//! siblings are cancelled). A resume rebuilds the graph from the plan and the stored
//! decompositions (`replay`), so nothing is decomposed twice.

use super::merge::{self, Part};
use super::{Coordinator, Mode};
use crate::domain::event::payload::{self, SubtaskFailure};
use crate::domain::event::EventData;
use crate::domain::graph::TaskGraph;
use crate::domain::plan::subplan::{self, Scope};
use crate::domain::plan::{reserved_id, Form, Merge, OnSubtaskFailure, Source, TaskSpec};
use crate::domain::reference::{self, Lookup};
use crate::domain::time::now_ms;
use crate::domain::{FailureKind, TaskStatus};
use crate::runtime::messages::AttemptError;
use crate::runtime::RuntimeError;
use crate::store::{DecompositionRow, StoreError};
use crate::tools::ToolOutput;
use actix::prelude::*;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What a round of a sub-plan is beside its subtasks.
pub(super) struct Round {
    pub source: Source,
    /// Subtasks it replaces (a replan).
    pub replaced: Vec<String>,
    /// Why it was made (a replan).
    pub reason: Option<String>,
}

/// Rebuilds a run's graph: the plan's, then each stored decomposition in the order it joined.
///
/// # Errors
/// A row that does not fit the graph (the store was changed by hand).
pub(crate) fn replay(
    graph: &mut TaskGraph,
    rows: Vec<DecompositionRow>,
) -> Result<(), RuntimeError> {
    for row in rows {
        let corrupt = |why: String| {
            RuntimeError::Store(StoreError::Corrupt {
                what: "decomposition",
                why: format!("task `{}` round {}: {why}", row.task_id, row.round),
            })
        };
        let parent = graph
            .index_of(row.task_id.as_str())
            .ok_or_else(|| corrupt("no such task in the run".into()))?;
        if graph.len() as i64 != row.first_idx {
            return Err(corrupt(format!(
                "its subtasks start at index {}, the graph has {} tasks",
                row.first_idx,
                graph.len()
            )));
        }
        graph
            .append(parent, row.subtasks, &row.replaced)
            .map_err(corrupt)?;
    }
    Ok(())
}

/// The bound on a decomposition's size, named: the task's own `max_subtasks` when it is
/// below the runtime's limit `name`.
fn size_limit(own: Option<u32>, name: &'static str, limit: u32) -> (&'static str, u32) {
    match own {
        Some(m) if m < limit => ("max_subtasks (of the task)", m),
        _ => (name, limit),
    }
}

/// An item of a `for_each`, as its subtask sees it (strings escaped: what an item holds is
/// data, never a reference).
struct ItemLookup<'a> {
    name: &'a str,
    value: Value,
}

impl Lookup for ItemLookup<'_> {
    fn input(&self, _: &str) -> Option<&Value> {
        None
    }
    fn outputs(&self, _: &str) -> Option<&Value> {
        None
    }
    fn item(&self, name: &str) -> Option<&Value> {
        (name == self.name).then_some(&self.value)
    }
}

/// The subtasks of a `for_each` over `items`: `template` with each item in place of
/// `${item.NAME}`, ids `0`, `1`, …
fn expand(template: &TaskSpec, name: &str, items: Vec<Value>) -> Result<Vec<TaskSpec>, String> {
    // Only the inputs hold the item in the common case: the rest is cloned as it is.
    let mut rest = template.clone();
    let inputs = Value::Object(std::mem::take(&mut rest.inputs));
    let rest_value = serde_json::to_value(&rest).map_err(|e| e.to_string())?;
    let rest_has_item = reference::references_in(&rest_value)
        .map_err(|e| e.to_string())?
        .iter()
        .any(|(_, r)| reference::items_only(r));
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let lookup = ItemLookup {
            name,
            value: reference::escaped(item),
        };
        let mut spec = if rest_has_item {
            let v = reference::resolve(&rest_value, &lookup, reference::items_only)
                .map_err(|e| format!("item {n}: {e}"))?;
            serde_json::from_value::<TaskSpec>(v).map_err(|e| format!("item {n}: {e}"))?
        } else {
            rest.clone()
        };
        match reference::resolve(&inputs, &lookup, reference::items_only) {
            Ok(Value::Object(m)) => spec.inputs = m,
            Ok(_) => {}
            Err(e) => return Err(format!("item {n}: {e}")),
        }
        spec.id = n.to_string();
        out.push(spec);
    }
    Ok(out)
}

/// What a decomposition is made from, gathered by the coordinator: subtasks as given, or a
/// `for_each` template and its items.
enum Material {
    Specs(Source, Vec<TaskSpec>),
    Items {
        template: Box<TaskSpec>,
        item: String,
        items: Vec<Value>,
    },
}

impl Material {
    fn len(&self) -> usize {
        match self {
            Self::Specs(_, s) => s.len(),
            Self::Items { items, .. } => items.len(),
        }
    }

    fn source(&self) -> Source {
        match self {
            Self::Specs(source, _) => *source,
            Self::Items { .. } => Source::ForEach,
        }
    }

    fn into_specs(self) -> Result<Vec<TaskSpec>, String> {
        match self {
            Self::Specs(_, specs) => Ok(specs),
            Self::Items {
                template,
                item,
                items,
            } => expand(&template, &item, items).map_err(|e| format!("for_each: {e}")),
        }
    }
}

/// The sub-plan of task `i` of `graph` checked with the plan check, in the scope its subtasks
/// have (`names`, from [`Coordinator::scope_names`]), rewritten to full ids.
fn check_subplan(
    graph: &TaskGraph,
    i: usize,
    specs: Vec<TaskSpec>,
    names: &HashMap<String, String>,
    inputs: &Map<String, Value>,
    shared: &crate::runtime::Shared,
) -> Result<Vec<TaskSpec>, String> {
    let key = graph.task(i).key.to_string();
    if let Some(why) = graph
        .decompose(i)
        .and_then(|d| specs.iter().find_map(|s| reserved_id(&s.id, d)))
    {
        return Err(format!("the sub-plan of `{key}`: {why}"));
    }
    let outer = |name: &str| names.get(name).cloned();
    let no_line = |_: usize| None;
    let scope = Scope {
        parent: Some(&key),
        outer: &outer,
        item: None,
        declared: &graph.plan().inputs,
        resolved: inputs,
        line: &no_line,
        tools: &shared.tools,
        agents: &shared.agents,
    };
    subplan::rewrite(&key, specs, &scope).map_err(|errors| {
        let list: Vec<String> = errors.into_iter().map(|(_, e)| e.to_string()).collect();
        format!("the sub-plan of `{key}` is invalid: {}", list.join("; "))
    })
}

impl Coordinator {
    /// The agent accepted decomposed task `i` (with a planned sub-plan in `output`): the
    /// limits are checked here; the sub-plan is made and checked on a blocking thread (a
    /// `for_each` may have thousands of items), then committed with its subtasks that have
    /// nothing to wait for made ready in the same transaction.
    pub(super) fn decompose(&mut self, i: usize, output: ToolOutput, ctx: &mut Context<Self>) {
        let graph = self.state.graph().clone();
        let key = graph.task(i).key.clone();
        let Some(d) = graph.decompose(i) else {
            return;
        };
        let fail = |kind, message: String| AttemptError::new(kind, message);
        let limits = self.s.shared.options.limits;
        let depth = graph.task(i).depth + 1;
        if depth > limits.max_depth {
            let msg = format!(
                "limit_exceeded: max_depth {}: the subtasks of `{key}` would be at depth {depth}",
                limits.max_depth
            );
            return self.fail(i, fail(FailureKind::LimitExceeded, msg), ctx);
        }
        let material = match d.form() {
            Ok(Form::Static(subtasks)) => Material::Specs(Source::Static, subtasks.to_vec()),
            Ok(Form::ForEach { list, item, task }) => {
                let refs = self.state.refs(&self.s.inputs);
                let resolved =
                    reference::resolve(&Value::String(list.to_string()), &refs, reference::all);
                let items = match resolved {
                    Ok(Value::Array(items)) => items,
                    Ok(other) => {
                        let msg = format!(
                            "for_each `{list}` is not a list (it is {})",
                            merge::kind_of(&other)
                        );
                        return self.fail(i, fail(FailureKind::Input, msg), ctx);
                    }
                    Err(e) => {
                        let msg = format!("for_each: {e}");
                        return self.fail(i, fail(FailureKind::Input, msg), ctx);
                    }
                };
                let (which, most) = size_limit(d.max_subtasks, "max_for_each", limits.max_for_each);
                if items.len() > most as usize {
                    let msg = format!(
                        "limit_exceeded: {which} {most}: `{list}` has {} items",
                        items.len()
                    );
                    return self.fail(i, fail(FailureKind::LimitExceeded, msg), ctx);
                }
                Material::Items {
                    template: Box::new(task.clone()),
                    item: item.to_string(),
                    items,
                }
            }
            Ok(Form::Planner { .. }) => {
                let planned = output
                    .outputs
                    .get("subtasks")
                    .cloned()
                    .map(serde_json::from_value::<Vec<TaskSpec>>);
                match planned {
                    Some(Ok(specs)) => Material::Specs(Source::Planner, specs),
                    _ => {
                        let msg = "the planner gave no sub-plan".to_string();
                        return self.fail(i, fail(FailureKind::Tool, msg), ctx);
                    }
                }
            }
            Err(why) => return self.fail(i, fail(FailureKind::Input, why), ctx),
        };
        let n = material.len();
        if material.source() != Source::ForEach {
            let (which, most) = size_limit(d.max_subtasks, "max_subtasks", limits.max_subtasks);
            if n > most as usize {
                let msg = format!(
                    "limit_exceeded: {which} {most}: the sub-plan of `{key}` has {n} subtasks"
                );
                return self.fail(i, fail(FailureKind::LimitExceeded, msg), ctx);
            }
        }
        if graph.len() + n > limits.max_tasks as usize {
            let msg = format!(
                "limit_exceeded: max_tasks {}: the run has {} tasks and `{key}` adds {n}",
                limits.max_tasks,
                graph.len()
            );
            return self.fail(i, fail(FailureKind::LimitExceeded, msg), ctx);
        }
        let names = self.scope_names(i, false);
        let (shared, inputs) = (self.s.shared.clone(), self.s.inputs.clone());
        let source = material.source();
        let job = move || {
            let specs = material.into_specs()?;
            check_subplan(&graph, i, specs, &names, &inputs, &shared)
        };
        self.decomposing.insert(i);
        let checked = async move {
            tokio::task::spawn_blocking(job)
                .await
                .unwrap_or_else(|e| Err(format!("checking the sub-plan failed: {e}")))
        };
        ctx.spawn(checked.into_actor(self).map(move |res, act, ctx| {
            act.decomposed(i, source, res, ctx);
        }));
    }

    /// The sub-plan of task `i` is made and checked (or why not): commit it, unless the task
    /// ended meanwhile (a cancel).
    fn decomposed(
        &mut self,
        i: usize,
        source: Source,
        checked: Result<Vec<TaskSpec>, String>,
        ctx: &mut Context<Self>,
    ) {
        self.decomposing.remove(&i);
        if self.mode != Mode::Running
            || self.state.task(i).status != TaskStatus::Running
            || self.state.is_decomposed(i)
        {
            return;
        }
        let specs = match checked {
            Ok(specs) => specs,
            Err(why) => {
                self.fail(i, AttemptError::new(FailureKind::Input, why), ctx);
                return self.flush(ctx, None);
            }
        };
        self.record_attempt(i, None);
        let round = Round {
            source,
            replaced: Vec::new(),
            reason: None,
        };
        if let Err(why) = self.commit_round(i, specs, round, ctx) {
            self.fail(i, AttemptError::new(FailureKind::Input, why), ctx);
        } else {
            self.arm_parent_deadline(i, ctx);
        }
        self.flush(ctx, None);
    }

    /// Commits a round of task `p`'s sub-plan (checked, full ids): its decomposition row and
    /// `task.decomposed` (the first round) or `task.replanned`, and makes ready the subtasks
    /// with nothing to wait for, all in one transaction.
    pub(super) fn commit_round(
        &mut self,
        p: usize,
        specs: Vec<TaskSpec>,
        round: Round,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let graph = self.state.graph();
        let number = graph.rounds(p) + 1;
        let depth = graph.task(p).depth + 1;
        let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
        let row = DecompositionRow {
            run_id: self.s.run,
            task_id: graph.task(p).key.clone(),
            round: number,
            first_idx: graph.len() as i64,
            source: round.source,
            subtasks: specs.clone(),
            replaced: round.replaced.clone(),
            reason: round.reason.clone(),
            created_at: now_ms(),
        };
        let (_, ready) = self.state.append(p, specs, &round.replaced)?;
        self.out.batch().decompositions.push(row);
        let data = match round.reason {
            None => EventData::TaskDecomposed(payload::TaskDecomposed {
                source: round.source.as_str().into(),
                subtasks: ids,
                depth,
                agent: self.state.task(p).agent.clone(),
            }),
            Some(reason) => EventData::TaskReplanned(payload::TaskReplanned {
                round: number,
                replaced: round.replaced,
                subtasks: ids,
                reason,
            }),
        };
        self.emit(Some(p), data);
        // Subtasks get their rows as they move (as plan tasks do); until then the
        // decomposition row lists them.
        if self.mode == Mode::Running {
            for c in ready {
                self.ready_or_defer(c, ctx);
            }
        }
        Ok(())
    }

    /// The tasks outside a sub-plan of task `i` that its subtasks may name, by the name they
    /// use: what `i` and its ancestors depend on, transitively (all done before `i` started),
    /// nearest scope first; with `finished`, also `i`'s own succeeded subtasks (a replan).
    pub(super) fn scope_names(&self, i: usize, finished: bool) -> HashMap<String, String> {
        let graph = self.state.graph();
        let mut done: HashSet<usize> = HashSet::new();
        let mut stack: Vec<usize> = graph
            .ancestry(i)
            .flat_map(|a| graph.task(a).deps.iter().copied())
            .collect();
        while let Some(j) = stack.pop() {
            if done.insert(j) {
                stack.extend(graph.task(j).deps.iter().copied());
            }
        }
        let mut names: HashMap<String, String> = HashMap::new();
        if finished {
            if let Some(g) = self.state.group(i) {
                for &c in &g.children {
                    if self.state.task(c).status == TaskStatus::Succeeded {
                        let key = graph.task(c).key.as_str();
                        if let Some((_, local)) = key.rsplit_once('.') {
                            names.insert(local.to_string(), key.to_string());
                        }
                    }
                }
            }
        }
        // Nearest scope first: a name is taken by the first scope that has it.
        let mut levels: Vec<(Option<usize>, Vec<usize>)> = graph
            .ancestry(i)
            .map(|a| (graph.task(a).parent, Vec::new()))
            .collect();
        for &j in &done {
            let parent = graph.task(j).parent;
            if let Some(level) = levels.iter_mut().find(|(p, _)| *p == parent) {
                level.1.push(j);
            }
        }
        for (_, members) in levels {
            for j in members {
                let key = graph.task(j).key.as_str();
                let local = key.rsplit_once('.').map_or(key, |(_, l)| l);
                names
                    .entry(local.to_string())
                    .or_insert_with(|| key.to_string());
            }
        }
        names
    }

    /// Checks a sub-plan of task `i` (see [`check_subplan`]) here, on the actor.
    pub(super) fn check_subplan(
        &self,
        i: usize,
        specs: Vec<TaskSpec>,
        names: &HashMap<String, String>,
    ) -> Result<Vec<TaskSpec>, String> {
        check_subplan(
            self.state.graph(),
            i,
            specs,
            names,
            &self.s.inputs,
            &self.s.shared,
        )
    }

    /// Arms decomposed task `i`'s deadline: its `timeout_s` from its first start covers its
    /// whole sub-plan.
    pub(super) fn arm_parent_deadline(&mut self, i: usize, ctx: &mut Context<Self>) {
        let Some(limit) = self.state.graph().task(i).timeout else {
            return;
        };
        let started = self.state.task(i).started_at.unwrap_or_else(now_ms);
        let left = (started + limit.as_millis() as i64 - now_ms()).max(0) as u64;
        ctx.run_later(Duration::from_millis(left), move |act, ctx| {
            let t = act.state.task(i);
            if act.mode != Mode::Running || t.status.is_terminal() || !act.state.is_decomposed(i) {
                return;
            }
            act.cancel_subtree(i, "its parent task timed out");
            let msg = format!(
                "timed out after {}s (its subtasks were cancelled)",
                limit.as_secs_f64()
            );
            act.fail(i, AttemptError::new(FailureKind::Timeout, msg), ctx);
            act.flush(ctx, None);
        });
    }

    /// Cancels every open subtask under task `p` (their own subtasks first).
    pub(super) fn cancel_subtree(&mut self, p: usize, reason: &str) {
        let Some(children) = self.state.group(p).map(|g| g.children.clone()) else {
            return;
        };
        for c in children {
            if self.state.task(c).status.is_terminal() {
                continue;
            }
            self.cancel_subtree(c, reason);
            if self.state.cancel(c, reason, now_ms()) {
                self.emit(
                    Some(c),
                    EventData::TaskCancelled(payload::Reason {
                        reason: reason.to_string(),
                    }),
                );
                self.write_row(c);
            }
        }
    }

    /// Settles the decomposed tasks one of whose subtasks ended: a failure under `fail`
    /// cancels the siblings and replans (when `replan` allows) or fails the task; once every
    /// subtask has ended the results merge into the task's outputs.
    pub(super) fn settle_groups(&mut self, ctx: &mut Context<Self>) {
        while let Some(p) = self.state.next_to_settle() {
            let t = self.state.task(p);
            if t.status != TaskStatus::Running || self.mode != Mode::Running {
                continue;
            }
            let graph = self.state.graph().clone();
            let (Some(d), Some(g)) = (graph.decompose(p), self.state.group(p)) else {
                continue;
            };
            if g.busy {
                continue;
            }
            if d.on_subtask_failure == OnSubtaskFailure::Fail {
                if let Some(&c) = g.failed.first() {
                    let child = self.state.task(c);
                    let why = child.error.clone().unwrap_or_default();
                    let msg = format!("subtask `{}` {}: {why}", graph.task(c).key, child.status);
                    let sibling = format!("sibling `{}` {}", graph.task(c).key, child.status);
                    self.cancel_subtree(p, &sibling);
                    if self.may_replan(p) {
                        self.replan(p, msg, ctx);
                    } else {
                        self.fail(p, AttemptError::new(FailureKind::Tool, msg), ctx);
                    }
                    continue;
                }
            }
            if g.open > 0 {
                continue;
            }
            let key = graph.task(p).key.as_str();
            let local = |c: usize| &graph.task(c).key.as_str()[key.len() + 1..];
            let mut parts = Vec::with_capacity(g.children.len());
            let mut failed = Vec::new();
            for &c in &g.children {
                let child = self.state.task(c);
                if child.status == TaskStatus::Succeeded {
                    parts.push(Part {
                        id: local(c),
                        outputs: child.outputs.as_ref(),
                    });
                } else {
                    failed.push(SubtaskFailure {
                        task: graph.task(c).key.to_string(),
                        status: child.status.to_string(),
                        error: child.error.clone().unwrap_or_default(),
                    });
                }
            }
            let collect = d.on_subtask_failure == OnSubtaskFailure::Collect;
            let kind = d.merge();
            let merged = merge::merge(
                kind,
                d.merge_output(),
                &parts,
                collect.then_some(&failed[..]),
            );
            drop(parts);
            match merged {
                Err(why) => {
                    let msg = format!("merge `{}` failed: {why}", kind.as_str());
                    self.fail(p, AttemptError::new(FailureKind::Tool, msg), ctx);
                }
                Ok(outputs) if kind == Merge::Llm => {
                    let instructions = d.merge_instructions().unwrap_or_default().to_string();
                    self.merge_by_model(p, &instructions, outputs, failed, ctx);
                }
                Ok(outputs) => self.merged(p, kind.as_str(), failed, outputs, ctx),
            }
        }
    }
}
