//! A task's `decompose` key: how a task becomes a sub-plan at run time (a static list of
//! subtasks, a sub-plan the decomposing agent's model writes, or one subtask per item of a
//! list known only at run time), how the subtasks' results merge into the task's outputs,
//! and what a failed subtask does to its siblings.

use super::TaskSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a task is split into subtasks. Exactly one of `subtasks`, `planner` (with `goal`) or
/// `for_each` (with `as` and `task`) is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decompose {
    /// A static sub-plan: tasks as in a plan, `depends_on` and references among siblings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtasks: Option<Vec<TaskSpec>>,
    /// The agent that takes the task asks its model for the sub-plan (with `goal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<bool>,
    /// What the planned sub-plan must achieve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// A reference to a list (`${tasks.ID.outputs.PATH}` or `${inputs.NAME}`): one subtask
    /// per item, `PARENT.0`, `PARENT.1`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// The name of the item inside `task`: `${item.NAME}`.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The subtask made for each item (its `id` is the item's position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Box<TaskSpec>>,
    /// How the subtasks' outputs become the task's outputs (default `object`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeSpec>,
    /// What a failed subtask does (default `fail`).
    #[serde(default)]
    pub on_subtask_failure: OnSubtaskFailure,
    /// Rounds of replanning the unfinished part after a subtask fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replan: Option<Replan>,
    /// At most this many subtasks (within the runtime's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subtasks: Option<u32>,
}

/// Where a decomposition's sub-plan comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `subtasks`, written in the plan.
    Static,
    /// Written by the decomposing agent's model.
    Planner,
    /// One subtask per item of a list.
    ForEach,
}

impl Source {
    /// `static`, `planner` or `for_each`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Planner => "planner",
            Self::ForEach => "for_each",
        }
    }

    /// Parses what [`Source::as_str`] writes.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "static" => Ok(Self::Static),
            "planner" => Ok(Self::Planner),
            "for_each" => Ok(Self::ForEach),
            other => Err(format!("unknown decomposition source `{other}`")),
        }
    }
}

/// One form of decomposition, as given.
#[derive(Debug, Clone, Copy)]
pub enum Form<'a> {
    /// A static sub-plan.
    Static(&'a [TaskSpec]),
    /// A planned sub-plan for `goal`.
    Planner {
        /// What the sub-plan must achieve.
        goal: &'a str,
    },
    /// One subtask per item.
    ForEach {
        /// The list reference.
        list: &'a str,
        /// The item's name.
        item: &'a str,
        /// The subtask template.
        task: &'a TaskSpec,
    },
}

impl Form<'_> {
    /// Where its sub-plan comes from.
    pub fn source(&self) -> Source {
        match self {
            Self::Static(_) => Source::Static,
            Self::Planner { .. } => Source::Planner,
            Self::ForEach { .. } => Source::ForEach,
        }
    }
}

impl Decompose {
    /// The form given, or why the keys do not make exactly one.
    ///
    /// # Errors
    /// No form, several forms, or a form missing its companion key.
    pub fn form(&self) -> Result<Form<'_>, String> {
        let given = [
            self.subtasks.is_some(),
            self.planner.is_some() || self.goal.is_some(),
            self.for_each.is_some() || self.item.is_some() || self.task.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 => return Err("`decompose` needs one of `subtasks`, `planner` with `goal`, or `for_each` with `as` and `task`".into()),
            1 => {}
            _ => return Err("`decompose` takes one of `subtasks`, `planner` or `for_each`, not several".into()),
        }
        if let Some(subtasks) = &self.subtasks {
            return Ok(Form::Static(subtasks));
        }
        if given[1] {
            if self.planner != Some(true) {
                return Err("`planner` must be `true` (with `goal`)".into());
            }
            return match self.goal.as_deref().map(str::trim) {
                Some(g) if !g.is_empty() => Ok(Form::Planner {
                    goal: self.goal.as_deref().unwrap_or_default(),
                }),
                _ => Err("`goal` must say what the sub-plan achieves".into()),
            };
        }
        match (&self.for_each, &self.item, &self.task) {
            (Some(list), Some(item), Some(task)) => Ok(Form::ForEach { list, item, task }),
            _ => Err("`for_each` needs `as` (the item's name) and `task`".into()),
        }
    }

    /// Whether `other` asks for the same sub-plan: the same static subtasks, the same
    /// planner goal, or the same template over the same list (merge settings aside).
    pub fn same_work(&self, other: &Self) -> bool {
        match (self.form(), other.form()) {
            (Ok(Form::Static(a)), Ok(Form::Static(b))) => a == b,
            (Ok(Form::Planner { goal: a }), Ok(Form::Planner { goal: b })) => {
                a.trim().eq_ignore_ascii_case(b.trim())
            }
            (
                Ok(Form::ForEach {
                    list: a,
                    item: x,
                    task: t,
                }),
                Ok(Form::ForEach {
                    list: b,
                    item: y,
                    task: u,
                }),
            ) => a == b && x == y && t == u,
            _ => false,
        }
    }

    /// How results merge.
    pub fn merge(&self) -> Merge {
        self.merge.as_ref().map(MergeSpec::kind).unwrap_or_default()
    }

    /// The output each subtask contributes to a `list` or `concat` merge (all of its
    /// outputs, or its only one, when not given).
    pub fn merge_output(&self) -> Option<&str> {
        match &self.merge {
            Some(MergeSpec::Full { output, .. }) => output.as_deref(),
            _ => None,
        }
    }

    /// The instructions of an `llm` merge.
    pub fn merge_instructions(&self) -> Option<&str> {
        match &self.merge {
            Some(MergeSpec::Full { instructions, .. }) => instructions.as_deref(),
            _ => None,
        }
    }

    /// Rounds of replanning allowed.
    pub fn replan_rounds(&self) -> u32 {
        self.replan.map_or(0, |r| r.max)
    }
}

/// How subtasks' outputs become the decomposed task's outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// `{SUBTASK: outputs, …}` by subtask id (the part after `PARENT.`).
    #[default]
    Object,
    /// `{items: [outputs, …]}` in subtask order.
    List,
    /// `{value: …}`: the subtasks' strings joined, or their lists concatenated.
    Concat,
    /// `{text: …}`: the decomposing agent's model merges, following `instructions`.
    Llm,
}

impl Merge {
    /// `object`, `list`, `concat` or `llm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::List => "list",
            Self::Concat => "concat",
            Self::Llm => "llm",
        }
    }
}

/// `merge`: a kind (`object`, `list`, `concat`, `llm`), or a kind with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MergeSpec {
    /// Just the kind.
    Kind(Merge),
    /// The kind with settings.
    Full {
        /// The kind.
        kind: Merge,
        /// For `llm`: how to merge, in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instructions: Option<String>,
        /// For `list` and `concat`: the output each subtask contributes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
}

impl MergeSpec {
    /// The kind.
    pub fn kind(&self) -> Merge {
        match self {
            Self::Kind(k) | Self::Full { kind: k, .. } => *k,
        }
    }
}

/// What a failed subtask does to its decomposed task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnSubtaskFailure {
    /// Its siblings are cancelled and the task fails (after replanning, when allowed).
    #[default]
    Fail,
    /// The others go on; the task succeeds with `partial: true` and every failure.
    Collect,
}

/// Replanning after a failed subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replan {
    /// Rounds allowed (each replaces the unfinished part of the sub-plan).
    pub max: u32,
}

/// Subtask ids that cannot be used: `outputs` (it would make references ambiguous), and
/// under an `object` merge with `collect`, the keys the merge adds.
pub fn reserved_id(id: &str, decompose: &Decompose) -> Option<&'static str> {
    if id == "outputs" {
        return Some("`outputs` cannot be a subtask id (references would be ambiguous)");
    }
    if decompose.merge() == Merge::Object
        && decompose.on_subtask_failure == OnSubtaskFailure::Collect
        && matches!(id, "partial" | "failures")
    {
        return Some("`partial` and `failures` are keys of a collected merge, not subtask ids");
    }
    None
}

/// Bounds on decompositions (`policies/limits.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deepest subtask (plan tasks are at depth 0).
    #[serde(default = "Limits::depth")]
    pub max_depth: u32,
    /// Subtasks of one static or planned decomposition.
    #[serde(default = "Limits::subtasks")]
    pub max_subtasks: u32,
    /// Subtasks of one `for_each` decomposition.
    #[serde(default = "Limits::for_each")]
    pub max_for_each: u32,
    /// Tasks of one run, subtasks included.
    #[serde(default = "Limits::tasks")]
    pub max_tasks: u32,
}

impl Limits {
    fn depth() -> u32 {
        3
    }
    fn subtasks() -> u32 {
        1_000
    }
    fn for_each() -> u32 {
        10_000
    }
    fn tasks() -> u32 {
        100_000
    }

    /// Each limit with its name, for checks and messages.
    pub fn named(&self) -> [(&'static str, u32); 4] {
        [
            ("max_depth", self.max_depth),
            ("max_subtasks", self.max_subtasks),
            ("max_for_each", self.max_for_each),
            ("max_tasks", self.max_tasks),
        ]
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: Self::depth(),
            max_subtasks: Self::subtasks(),
            max_for_each: Self::for_each(),
            max_tasks: Self::tasks(),
        }
    }
}
