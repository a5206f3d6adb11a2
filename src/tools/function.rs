//! Tools from closures, typed inputs, and constructors for what a tool returns.

use super::{Tool, ToolContext, ToolError, ToolOutput};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;

/// A tool made of a name, an input schema and an async closure, for
/// [`crate::RuntimeBuilder::tool`].
///
/// The closure gets the attempt's [`ToolContext`] (read typed inputs with
/// [`ToolContext::input`]) and returns a future; it runs on the runtime's tool threads, so
/// it may await anything and block briefly (see [`Tool`] for what a tool may do). An input
/// schema that is not a valid JSON Schema makes `build()` fail, naming the tool and the
/// place in the schema.
///
/// ```
/// use nofx::tools::{tool_fn, ToolOutput};
/// use serde::Deserialize;
/// use serde_json::json;
///
/// #[derive(Deserialize)]
/// struct Text { text: String }
///
/// let words = tool_fn(
///     "text:words",
///     json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
///     |ctx| async move {
///         let Text { text } = ctx.input()?;
///         Ok(ToolOutput::new().output("words", text.split_whitespace().count()))
///     },
/// );
/// # let _ = nofx::Runtime::builder().tool(words);
/// ```
pub fn tool_fn<F, Fut>(name: impl Into<String>, input_schema: Value, run: F) -> Arc<dyn Tool>
where
    F: Fn(ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
{
    Arc::new(FnTool {
        name: name.into(),
        schema: input_schema,
        run,
    })
}

/// Like [`tool_fn`], for a closure that blocks (file or CPU work, a synchronous client): it
/// runs on tokio's blocking threads, never on a tool thread, so any number of such tools
/// run beside quick ones without delaying them. A cancelled attempt stops waiting for it at
/// once; the closure itself runs on to its end (check `ctx.cancel.is_cancelled()` in long
/// loops to stop early).
///
/// ```
/// use nofx::tools::{blocking_tool_fn, ToolOutput};
/// use serde_json::json;
///
/// let digest = blocking_tool_fn("file:size", json!({"type": "object"}), |ctx| {
///     let bytes = std::fs::read(ctx.workspace.join("data.bin"))
///         .map_err(|e| nofx::tools::ToolError::failed(format!("cannot read data.bin: {e}")))?;
///     Ok(ToolOutput::new().output("bytes", bytes.len()))
/// });
/// # let _ = nofx::Runtime::builder().tool(digest);
/// ```
pub fn blocking_tool_fn<F>(name: impl Into<String>, input_schema: Value, run: F) -> Arc<dyn Tool>
where
    F: Fn(ToolContext) -> Result<ToolOutput, ToolError> + Send + Sync + 'static,
{
    let run = Arc::new(run);
    tool_fn(name, input_schema, move |ctx| {
        let run = run.clone();
        async move {
            let cancel = ctx.cancel.clone();
            let work = tokio::task::spawn_blocking(move || run(ctx));
            tokio::select! {
                done = work => match done {
                    Ok(result) => result,
                    // The attempt fails as any tool's panic does (the agent reports it).
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(ToolError::Io(e.to_string())),
                },
                () = cancel.cancelled() => Err(ToolError::Cancelled),
            }
        }
    })
}

/// `tool` with a description for agents' models and a declaration of whether a repeat is
/// safe ([`Tool::idempotent`]); everything else is `tool`'s own.
///
/// ```
/// use nofx::tools::{describe, tool_fn, ToolOutput};
/// use serde_json::json;
///
/// let now = describe(
///     tool_fn("clock:now", json!({"type": "object"}), |_| async {
///         Ok(ToolOutput::new().output("unix", 1_700_000_000))
///     }),
///     "The current time as Unix seconds.",
///     true,
/// );
/// assert!(now.idempotent());
/// ```
pub fn describe(
    tool: Arc<dyn Tool>,
    description: impl Into<String>,
    idempotent: bool,
) -> Arc<dyn Tool> {
    Arc::new(Described {
        tool,
        description: description.into(),
        idempotent,
    })
}

struct Described {
    tool: Arc<dyn Tool>,
    description: String,
    idempotent: bool,
}

impl Tool for Described {
    fn name(&self) -> &str {
        self.tool.name()
    }

    fn input_schema(&self) -> Value {
        self.tool.input_schema()
    }

    fn check_inputs(&self, inputs: &Value) -> Vec<(String, String)> {
        self.tool.check_inputs(inputs)
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        self.tool.run(ctx)
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }
}

struct FnTool<F> {
    name: String,
    schema: Value,
    run: F,
}

impl<F, Fut> Tool for FnTool<F>
where
    F: Fn(ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn input_schema(&self) -> Value {
        self.schema.clone()
    }

    fn run<'a>(&'a self, ctx: ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin((self.run)(ctx))
    }
}

impl ToolContext {
    /// The inputs as `T` (any serde type; the input schema was already checked).
    ///
    /// # Errors
    /// [`ToolError::InvalidInput`] naming the field, when they do not fit `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, ToolError> {
        T::deserialize(&self.inputs).map_err(|e| ToolError::InvalidInput(e.to_string()))
    }
}

impl ToolOutput {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds output `name`, referenced downstream as `${tasks.ID.outputs.NAME}`.
    #[must_use]
    pub fn output(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.outputs.insert(name.into(), value.into());
        self
    }

    /// The fields of `value` (a struct or map) as outputs.
    ///
    /// # Errors
    /// [`ToolError::Failed`] when `value` does not serialize to a JSON object.
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, ToolError> {
        match serde_json::to_value(value) {
            Ok(Value::Object(outputs)) => Ok(Self {
                outputs,
                artifacts: Vec::new(),
            }),
            Ok(other) => Err(ToolError::failed(format!(
                "a tool's outputs are a JSON object, not {}",
                json_kind(&other)
            ))),
            Err(e) => Err(ToolError::failed(format!("outputs do not serialize: {e}"))),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl ToolError {
    /// The tool ran and failed, with no outputs (the attempt may be retried).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            outputs: Map::new(),
            artifacts: Vec::new(),
        }
    }

    /// The inputs are not what the tool accepts (beyond what its schema says).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// What the tool needs is not available (a service down, a missing configuration).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
}
