//! The model gateway: how tools, gates and the planner call models. One call is routed
//! (`model.routed`), checked against budgets (reserve before, settle after), sent with retries
//! on transient failures, and on a lasting failure handed to the next fallback model
//! (`model.fallback`). Every HTTP attempt becomes a usage row; an answer becomes a
//! `model.completed` event; a call above the alert threshold a `cost.alert`. Where these go is
//! the caller's [`CallSink`]: a task's sink hands them to its run's coordinator, which gives
//! events their place in the run's log.

use super::budget::{usd, BudgetError, Budgets, Ledger};
use super::catalog::{Catalog, ModelSpec, ProviderKind};
use super::config::ModelsConfig;
use super::retry::Cooldowns;
use super::routing::{NoModel, RouteRequest, Router};
use super::{
    Anthropic, ApiKey, CompletionRequest, ErrorKind, Message, ModelError, OpenAi, Provider,
    RetryPolicy,
};
use super::{ToolCall, ToolSpec};
use crate::config::{ConfigErrors, ConfigIssue};
use crate::domain::event::{payload, EventData};
use crate::domain::time::now_ms;
use crate::domain::{CorrelationId, Priority, Role, RunId, TaskKey};
use crate::store::{ModelCallRow, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Where a call's events, usage rows and streamed text go.
pub trait CallSink: Send + Sync {
    /// An event for the caller's run log.
    fn event(&self, data: EventData);
    /// A usage row.
    fn usage(&self, row: ModelCallRow);
    /// Whether someone listens to streamed text (the call then streams).
    fn wants_stream(&self) -> bool {
        false
    }
    /// A piece of streamed answer text.
    fn delta(&self, _model: &str, _text: &str) {}
}

/// Who calls, for routing, usage rows and budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The run (none for a planner call without a run).
    pub run: Option<RunId>,
    /// The task.
    pub task: Option<TaskKey>,
    /// Correlation id.
    pub correlation: CorrelationId,
    /// The calling tool (`llm:generate`, `codegen`, `gate:llm_judge`, `planner`).
    pub tool: String,
    /// The calling agent.
    pub agent: Option<String>,
    /// Its role.
    pub role: Option<Role>,
    /// The task's priority.
    pub priority: Priority,
    /// The task's capabilities.
    pub capabilities: Vec<String>,
    /// The project billed (budgets per project and month).
    pub project: String,
}

/// What to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// System prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Output token limit.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Whether the routing rules should treat this as needing reasoning.
    pub requires_reasoning: bool,
    /// The tools the model may call (none: a plain completion).
    pub tools: Vec<ToolSpec>,
    /// A model id or tier to prefer over the routing rules (an agent's `model`); the rules'
    /// route still gives the fallbacks.
    pub model: Option<String>,
}

/// A model's answer with what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The text.
    pub text: String,
    /// Model id (from `models.toml`).
    pub model: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Cost, micro-USD.
    pub cost_micro_usd: i64,
    /// Why the model stopped.
    pub stop_reason: Option<String>,
    /// The calls the model asks for, in its order (empty: a final answer).
    pub tool_calls: Vec<ToolCall>,
}

/// A call that did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No provider is configured.
    #[error("{0}")]
    NoProvider(String),
    /// No configured model can serve the request.
    #[error(transparent)]
    NoModel(#[from] NoModel),
    /// A budget would be passed; nothing was sent.
    #[error("{0}")]
    Budget(BudgetError),
    /// Every model of the route failed; the last error is given.
    #[error("every model of the route failed; last: {model}: {error}")]
    Failed {
        /// The last model tried.
        model: String,
        /// Its error.
        error: ModelError,
    },
}

/// Models ready to call: configured providers, routing, budgets.
pub struct Models {
    catalog: Catalog,
    router: Router,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    retry: RetryPolicy,
    /// When each model may be called again, as its provider asked.
    cooldowns: Cooldowns,
    ledger: Ledger,
    how_to_configure: String,
    /// The configured API keys: never in what a provider's error says.
    secrets: Vec<ApiKey>,
}

/// Tokens a text is estimated to hold (about four characters a token).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

impl Models {
    /// Builds clients for every configured provider; spend so far is read from `store`.
    ///
    /// # Errors
    /// When an HTTP client cannot be built; a custom provider not in the catalogue.
    pub fn build(cfg: ModelsConfig, store: Option<Store>) -> Result<Self, ConfigErrors> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let issue = |name: &str, message: String| ConfigIssue {
            file: "models.toml".into(),
            line: None,
            message: format!("provider `{name}`: {message}"),
        };
        let mut issues = Vec::new();
        for p in cfg.catalog.providers.values() {
            let key = cfg.keys.get(&p.name).cloned();
            let url = cfg.base_urls.get(&p.name);
            let configured = key.is_some() || url.is_some() || p.api_key_env.is_none();
            if !configured {
                continue;
            }
            let base = url.cloned().unwrap_or_else(|| p.base_url.clone());
            let client: Result<Arc<dyn Provider>, ModelError> = match p.kind {
                ProviderKind::Anthropic => Anthropic::new(
                    &p.name,
                    &base,
                    key.unwrap_or_else(|| ApiKey::new("")),
                    cfg.timeouts,
                )
                .map(|c| Arc::new(c) as Arc<dyn Provider>),
                ProviderKind::OpenAi => OpenAi::new(&p.name, &base, key, cfg.timeouts)
                    .map(|c| Arc::new(c) as Arc<dyn Provider>),
            };
            match client {
                Ok(c) => {
                    providers.insert(p.name.clone(), c);
                }
                Err(e) => issues.push(issue(&p.name, e.to_string())),
            }
        }
        for c in &cfg.custom {
            if cfg.catalog.providers.contains_key(c.name()) {
                providers.insert(c.name().to_string(), c.clone());
            } else {
                issues.push(issue(c.name(), "is not a provider of models.toml".into()));
            }
        }
        if !issues.is_empty() {
            return Err(ConfigErrors(issues));
        }
        let how_to_configure = cfg.how_to_configure();
        let secrets = cfg.keys.values().cloned().collect();
        Ok(Self {
            ledger: Ledger::new(cfg.budgets, store),
            catalog: cfg.catalog,
            router: cfg.router,
            providers,
            retry: cfg.retry,
            cooldowns: Cooldowns::default(),
            how_to_configure,
            secrets,
        })
    }

    /// Whether any provider is configured.
    pub fn is_configured(&self) -> bool {
        !self.providers.is_empty()
    }

    /// One sentence saying how to configure a provider.
    pub fn how_to_configure(&self) -> &str {
        &self.how_to_configure
    }

    /// The catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The routing rules.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The budgets.
    pub fn budgets(&self) -> &Budgets {
        self.ledger.budgets()
    }

    /// Names of the configured providers.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Whether `m`'s provider is configured.
    pub fn available(&self, m: &ModelSpec) -> bool {
        self.providers.contains_key(&m.provider)
    }

    /// The routing request for `ask` from `caller`.
    pub fn route_request(&self, caller: &Caller, ask: &Ask) -> RouteRequest {
        let message = |m: &Message| {
            let calls: u64 = m
                .tool_calls
                .iter()
                .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.input.to_string()) + 4)
                .sum();
            let results: u64 = m
                .tool_results
                .iter()
                .map(|r| estimate_tokens(&r.content) + 4)
                .sum();
            estimate_tokens(&m.content) + 4 + calls + results
        };
        let tools: u64 = ask
            .tools
            .iter()
            .map(|t| {
                estimate_tokens(&t.name)
                    + estimate_tokens(&t.description)
                    + estimate_tokens(&t.input_schema.to_string())
            })
            .sum();
        let text: u64 = ask
            .system
            .iter()
            .map(|s| estimate_tokens(s))
            .chain(ask.messages.iter().map(message))
            .sum::<u64>()
            + tools;
        RouteRequest {
            input_tokens: text,
            max_output_tokens: u64::from(ask.max_tokens),
            tool: caller.tool.clone(),
            priority: caller.priority,
            requires_reasoning: ask.requires_reasoning,
            agent_role: caller.role,
            capabilities: caller.capabilities.clone(),
        }
    }

    /// Routes, reserves, calls (with retries and fallbacks), records and settles.
    ///
    /// # Errors
    /// No provider, no fitting model, a budget that would be passed (nothing is sent), or
    /// every model of the route failing.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the HTTP call in flight and releases its reservation;
    /// rows of attempts that already ended have been handed to the sink.
    pub async fn complete(
        &self,
        caller: &Caller,
        ask: &Ask,
        sink: &dyn CallSink,
    ) -> Result<Answer, CallError> {
        if self.providers.is_empty() {
            return Err(CallError::NoProvider(self.how_to_configure.clone()));
        }
        let req = self.route_request(caller, ask);
        let available = |m: &ModelSpec| self.available(m);
        let decision = match &ask.model {
            Some(prefer) => {
                self.router
                    .route_preferring(prefer, &req, &self.catalog, &available)?
            }
            None => self.router.route(&req, &self.catalog, &available)?,
        };
        tracing::info!(rule = %decision.rule, model = %decision.model, fallbacks = ?decision.fallbacks, estimated_tokens = decision.estimated_tokens, tool = %caller.tool, "model routed");
        sink.event(EventData::ModelRouted(payload::ModelRouted {
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
            model: decision.model.clone(),
            fallbacks: decision.fallbacks.clone(),
            estimated_tokens: decision.estimated_tokens,
            estimated_input_tokens: req.input_tokens,
            estimated_cost: decision.estimated_cost_micro_usd as f64 / 1e6,
        }));
        let chain: Vec<&ModelSpec> = std::iter::once(&decision.model)
            .chain(decision.fallbacks.iter())
            .filter_map(|id| self.catalog.models.get(id))
            .collect();
        let mut last: Option<(String, ModelError)> = None;
        for (n, spec) in chain.iter().enumerate() {
            if let Some((from, err)) = &last {
                tracing::warn!(from = %from, to = %spec.id, cause = %err.kind, "falling back to the next model");
                sink.event(EventData::ModelFallback(payload::ModelFallback {
                    from: from.clone(),
                    to: spec.id.clone(),
                    cause: err.kind.as_str().to_string(),
                    error: err.message.clone(),
                }));
            }
            let span = tracing::info_span!(
                "model_call",
                corr = %caller.correlation,
                model = %spec.id,
                provider = %spec.provider,
                tool = %caller.tool,
            );
            let tried = {
                use tracing::Instrument;
                self.try_model(caller, ask, spec, &req, sink)
                    .instrument(span)
                    .await
            };
            match tried {
                Ok(a) => return Ok(a),
                Err(Attempted::Budget(e)) => return Err(CallError::Budget(e)),
                Err(Attempted::Model(e)) => {
                    let last_one = n + 1 == chain.len();
                    if last_one {
                        return Err(CallError::Failed {
                            model: spec.id.clone(),
                            error: e,
                        });
                    }
                    last = Some((spec.id.clone(), e));
                }
            }
        }
        Err(CallError::NoModel(NoModel {
            rule: decision.rule,
            why: "the route names no model of the catalogue".into(),
        }))
    }

    /// One model of the route, with retries of transient failures.
    async fn try_model(
        &self,
        caller: &Caller,
        ask: &Ask,
        spec: &ModelSpec,
        req: &RouteRequest,
        sink: &dyn CallSink,
    ) -> Result<Answer, Attempted> {
        let provider = self
            .providers
            .get(&spec.provider)
            .ok_or_else(|| {
                Attempted::Model(ModelError::new(
                    ErrorKind::BadRequest,
                    format!("provider `{}` is not configured", spec.provider),
                ))
            })?
            .clone();
        let request = CompletionRequest {
            model: spec.name.clone(),
            system: ask.system.clone(),
            messages: ask.messages.clone(),
            max_tokens: ask.max_tokens,
            temperature: ask.temperature,
            tools: ask.tools.clone(),
        };
        let estimate = spec.cost_micro_usd(req.input_tokens, req.max_output_tokens);
        let tried = super::retry::retrying(self.retry, &spec.id, || async {
            // Not sent sooner than the provider asked, whichever call it asked.
            self.cooldowns.wait(&spec.id, self.retry).await?;
            let reservation = match self
                .ledger
                .reserve(caller.run, &caller.project, estimate, now_ms())
                .await
            {
                Ok(r) => r,
                // Not a model failure: never retried.
                Err(e) => return Ok(Err(e)),
            };
            let started = Instant::now();
            let row = |duration_ms: i64, error: Option<&ModelError>, tokens: [u64; 4], cost| {
                let [input, output, cache_read, cache_write] = tokens;
                ModelCallRow {
                    run_id: caller.run.map(|r| r.to_string()),
                    task_id: caller.task.as_ref().map(|t| t.to_string()),
                    tool: Some(caller.tool.clone()),
                    agent: caller.agent.clone(),
                    model: spec.id.clone(),
                    provider: spec.provider.clone(),
                    input_tokens: input as i64,
                    output_tokens: output as i64,
                    cache_read_tokens: cache_read as i64,
                    cache_write_tokens: cache_write as i64,
                    estimated_cost_micro_usd: estimate,
                    cost_micro_usd: cost,
                    duration_ms,
                    success: error.is_none(),
                    error_type: error.map(|e| e.kind.as_str().to_string()),
                    correlation_id: caller.correlation.to_string(),
                    at: now_ms(),
                    project: Some(caller.project.clone()),
                }
            };
            // An attempt whose call is dropped midway (its task cancelled or stopped) is
            // still a row: the request was sent and may be billed.
            let abandoned = Abandoned {
                on_drop: Some(|| {
                    let e = ModelError::new(ErrorKind::Cancelled, "the call was abandoned");
                    let ms = started.elapsed().as_millis() as i64;
                    sink.usage(row(ms, Some(&e), [0; 4], 0));
                }),
            };
            let result = if sink.wants_stream() {
                provider
                    .stream(&request, &|t: &str| sink.delta(&spec.id, t))
                    .await
            } else {
                provider.complete(&request).await
            }
            .map_err(|e| self.sanitized(e));
            abandoned.answered();
            if let Err(e) = &result {
                self.cooldowns.note(&spec.id, e);
            }
            let duration_ms = started.elapsed().as_millis() as i64;
            let (input, output) = match &result {
                Ok(c) => (c.input_tokens, c.output_tokens),
                Err(e) => e.partial_usage.unwrap_or((0, 0)),
            };
            let (cache_read, cache_write) = result
                .as_ref()
                .map_or((0, 0), |c| (c.cache_read_tokens, c.cache_write_tokens));
            let cost = spec.cost_with_cache_micro_usd(input, output, cache_read, cache_write);
            reservation.settle(cost);
            sink.usage(row(
                duration_ms,
                result.as_ref().err(),
                [input, output, cache_read, cache_write],
                cost,
            ));
            if let Some(limit) = self.ledger.budgets().per_call_alert {
                if cost > limit {
                    tracing::warn!(model = %spec.id, cost = %usd(cost), threshold = %usd(limit), tool = %caller.tool, "model call cost above the alert threshold");
                    sink.event(EventData::CostAlert(payload::CostAlert {
                        model: spec.id.clone(),
                        cost: cost as f64 / 1e6,
                        threshold: limit as f64 / 1e6,
                        input_tokens: input,
                        output_tokens: output,
                    }));
                }
            }
            let c = result?;
            sink.event(EventData::ModelCompleted(payload::ModelCompleted {
                model: spec.id.clone(),
                input_tokens: c.input_tokens,
                output_tokens: c.output_tokens,
                cost: cost as f64 / 1e6,
                duration_ms,
                stop_reason: c.stop_reason.clone(),
                text: c.text.clone(),
            }));
            Ok(Ok(Answer {
                text: c.text,
                model: spec.id.clone(),
                input_tokens: c.input_tokens,
                output_tokens: c.output_tokens,
                cache_read_tokens: c.cache_read_tokens,
                cache_write_tokens: c.cache_write_tokens,
                cost_micro_usd: cost,
                stop_reason: c.stop_reason,
                tool_calls: c.tool_calls,
            }))
        })
        .await;
        match tried.result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(budget)) => Err(Attempted::Budget(budget)),
            Err(e) => Err(Attempted::Model(e)),
        }
    }
}

/// The most of a provider's error message kept (the rest is cut, saying how much).
const MAX_ERROR_MESSAGE: usize = 2048;

impl Models {
    /// `e` with every configured API key taken out of its message (a provider, or a proxy in
    /// front of one, may echo the credentials it was sent) and the message bounded.
    fn sanitized(&self, mut e: ModelError) -> ModelError {
        let keys: Vec<&str> = self.secrets.iter().map(ApiKey::expose).collect();
        e.message = crate::redact::bounded(
            crate::redact::redacted(std::mem::take(&mut e.message), &keys),
            MAX_ERROR_MESSAGE,
        );
        e
    }
}

/// Runs `on_drop` if dropped before [`Abandoned::answered`].
struct Abandoned<F: FnOnce()> {
    on_drop: Option<F>,
}

impl<F: FnOnce()> Abandoned<F> {
    /// The call ended (with an answer or an error): nothing to do on drop.
    fn answered(mut self) {
        self.on_drop = None;
    }
}

impl<F: FnOnce()> Drop for Abandoned<F> {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

enum Attempted {
    Budget(BudgetError),
    Model(ModelError),
}
