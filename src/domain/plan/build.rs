//! Plans built in code: builders with the same defaults as a plan file, and references to
//! plan inputs and task outputs without hand-written `${…}` strings.
//!
//! ```
//! use nofx::plan::{Plan, Task};
//! let plan = Plan::new("greet")
//!     .task(Task::new("a", "test:echo").input("value", 41))
//!     .task(Task::new("b", "test:echo").input("got", Task::output_ref("a", "value")));
//! assert_eq!(plan.tasks[1].inputs["got"], "${tasks.a.outputs.value}");
//! ```
//!
//! A built plan is checked like a parsed one when it is submitted (or given to
//! [`crate::RuntimeBuilder::check`]): a reference to a task or output that does not exist,
//! a cycle or an unknown tool is reported with the task that holds it.

use super::{
    Complexity, GateSpec, InputSpec, InputType, Plan, PlanSource, Priority, RetryPolicy, TaskSpec,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

impl Plan {
    /// An empty plan called `name`: no inputs, no tasks, no deadline, the default project.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            inputs: BTreeMap::new(),
            tasks: Vec::new(),
            timeout_s: None,
            project: None,
            checkpoints: None,
        }
    }

    /// Adds a task (after the others: plan order breaks ties between ready tasks).
    #[must_use]
    pub fn task(mut self, task: TaskSpec) -> Self {
        self.tasks.push(task);
        self
    }

    /// Declares an input, referenced with [`Plan::input_ref`].
    #[must_use]
    pub fn input(mut self, name: impl Into<String>, spec: InputSpec) -> Self {
        self.inputs.insert(name.into(), spec);
        self
    }

    /// The deadline of the whole run.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout_s = Some(limit.as_secs_f64());
        self
    }

    /// The project the run belongs to.
    #[must_use]
    pub fn in_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// A reference to plan input `name`, as a task input: `${inputs.NAME}`.
    pub fn input_ref(name: &str) -> Value {
        Value::String(format!("${{inputs.{name}}}"))
    }
}

impl InputSpec {
    /// A required input of type `kind`.
    pub fn new(kind: InputType) -> Self {
        Self {
            kind,
            default: None,
            description: None,
        }
    }

    /// The value used when the caller gives none (the input is then optional).
    #[must_use]
    pub fn default_value(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// What the input means.
    #[must_use]
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

impl TaskSpec {
    /// Task `id` run by `tool`, with the defaults of a plan file: no inputs or dependencies,
    /// any agent, medium complexity, normal priority, no gates, no retries, no deadline.
    pub fn new(id: impl Into<String>, tool: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            tool: tool.into(),
            inputs: Map::new(),
            depends_on: Vec::new(),
            capabilities: Vec::new(),
            complexity: Complexity::default(),
            priority: Priority::default(),
            gates: Vec::new(),
            retry: RetryPolicy::default(),
            timeout_s: None,
            decompose: None,
            run_if: super::RunIf::default(),
        }
    }

    /// A reference to output `output` of task `task`, as a task input:
    /// `${tasks.TASK.outputs.OUTPUT}`. The referring task depends on `task`.
    pub fn output_ref(task: &str, output: &str) -> Value {
        Value::String(format!("${{tasks.{task}.outputs.{output}}}"))
    }

    /// Sets input `name` (a value, or a reference from [`TaskSpec::output_ref`] or
    /// [`Plan::input_ref`]).
    #[must_use]
    pub fn input(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.inputs.insert(name.into(), value.into());
        self
    }

    /// Runs after `task` has succeeded (references add such dependencies by themselves).
    #[must_use]
    pub fn after(mut self, task: impl Into<String>) -> Self {
        self.depends_on.push(task.into());
        self
    }

    /// Only agents with capability `capability` may take it.
    #[must_use]
    pub fn needs(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// How hard it is (for scoring agents).
    #[must_use]
    pub fn with_complexity(mut self, complexity: Complexity) -> Self {
        self.complexity = complexity;
        self
    }

    /// Its priority among ready tasks.
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Adds a validation gate.
    #[must_use]
    pub fn gate(mut self, gate: GateSpec) -> Self {
        self.gates.push(gate);
        self
    }

    /// Tries again up to `max` times after a failure, `backoff` apart.
    #[must_use]
    pub fn retries(mut self, max: u32, backoff: Duration) -> Self {
        self.retry = RetryPolicy {
            max,
            backoff_ms: u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
        };
        self
    }

    /// The deadline of one attempt.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout_s = Some(limit.as_secs_f64());
        self
    }
}

impl From<Plan> for PlanSource {
    fn from(plan: Plan) -> Self {
        Self::from_plan(plan)
    }
}

impl From<&PlanSource> for PlanSource {
    fn from(source: &PlanSource) -> Self {
        source.clone()
    }
}

impl From<&Plan> for PlanSource {
    fn from(plan: &Plan) -> Self {
        Self::from_plan(plan.clone())
    }
}

impl GateSpec {
    /// Output `output` (as text) must match `regex`.
    pub fn pattern(output: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::Pattern {
            output: output.into(),
            regex: regex.into(),
        }
    }

    /// Output `output` must satisfy the JSON Schema `schema`.
    pub fn json_schema(output: impl Into<String>, schema: Value) -> Self {
        Self::JsonSchema {
            output: Some(output.into()),
            schema,
        }
    }

    /// `argv`, run in the run workspace, must exit with 0 (within 60 s).
    pub fn command<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self::Command {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout_s: None,
        }
    }

    /// A person among `approvers` (anyone, when none are named) approves or rejects the
    /// outputs; the task waits for the decision, with no deadline.
    pub fn approval<S: Into<String>>(approvers: impl IntoIterator<Item = S>) -> Self {
        Self::Manual {
            approvers: approvers.into_iter().map(Into::into).collect(),
            timeout_s: None,
            on_timeout: super::OnTimeout::default(),
        }
    }
}
