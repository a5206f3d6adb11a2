//! The routing engine (`policies/routing.toml`): ordered rules, first match wins. A rule's
//! conditions look at estimated tokens, tool, priority, estimated cost, whether reasoning is
//! required, the agent's role and the task's capabilities; it names a tier or a model, a
//! reason and fallbacks. A tier resolves to the cheapest available model of that tier whose
//! context window fits the request, so with one provider every rule maps to its model of the
//! tier.
//!
//! ```toml
//! [[rules]]
//! name = "echo-is-cheap"
//! when = { tool = "test:echo" }
//! use = "small"
//! reason = "Simple task can use the small model"
//!
//! [default]
//! use = "mid"
//! fallbacks = ["small"]
//! reason = "Default model"
//! ```

use super::catalog::{Catalog, ModelSpec, Tier};
use crate::config::{line_at, parse_toml, ConfigIssue};
use crate::domain::{Priority, Role};
use serde::{Deserialize, Serialize};

/// What a rule routes to: a tier or one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The cheapest fitting model of the tier.
    Tier(Tier),
    /// This model.
    Model(String),
}

/// Conditions of a rule; all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Estimated tokens (input + output) above this.
    pub estimated_tokens_over: Option<u64>,
    /// Estimated tokens at most this.
    pub estimated_tokens_under: Option<u64>,
    /// The task's tool.
    pub tool: Option<String>,
    /// The task's priority.
    pub priority: Option<Priority>,
    /// Estimated cost in USD on the default route below this.
    pub estimated_cost_under: Option<f64>,
    /// Whether the task requires reasoning.
    pub requires_reasoning: Option<bool>,
    /// The agent's role.
    pub agent_role: Option<Role>,
    /// The task requires this capability.
    pub capability: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name, reported in `model.routed`.
    pub name: String,
    /// Conditions.
    pub when: When,
    /// Where it routes.
    pub target: Target,
    /// Why, reported in `model.routed`.
    pub reason: String,
    /// Tried in order when the target fails.
    pub fallbacks: Vec<Target>,
}

/// What the router looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRequest {
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Output tokens asked for.
    pub max_output_tokens: u64,
    /// The task's tool.
    pub tool: String,
    /// The task's priority.
    pub priority: Priority,
    /// Whether reasoning is required.
    pub requires_reasoning: bool,
    /// The agent's role.
    pub agent_role: Option<Role>,
    /// The task's capabilities.
    pub capabilities: Vec<String>,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The rule that matched (`default` when none did).
    pub rule: String,
    /// Its reason.
    pub reason: String,
    /// The chosen model id.
    pub model: String,
    /// Fallback model ids, in order.
    pub fallbacks: Vec<String>,
    /// Estimated tokens (input + output).
    pub estimated_tokens: u64,
    /// Estimated cost on the chosen model, micro-USD.
    pub estimated_cost_micro_usd: i64,
}

/// Why no model could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no configured model can serve this request (rule `{rule}`): {why}")]
pub struct NoModel {
    /// The rule that matched.
    pub rule: String,
    /// What is missing.
    pub why: String,
}

/// The rules and the default.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    rules: Vec<Rule>,
    default: Rule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rules: Vec<RawRule>,
    default: RawRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    when: When,
    #[serde(rename = "use")]
    target: toml::Spanned<String>,
    reason: String,
    #[serde(default)]
    fallbacks: Vec<toml::Spanned<String>>,
}

fn target(s: &str, catalog: &Catalog) -> Option<Target> {
    Tier::parse(s).map(Target::Tier).or_else(|| {
        catalog
            .models
            .contains_key(s)
            .then(|| Target::Model(s.to_string()))
    })
}

impl Router {
    /// Parses `routing.toml` against a catalogue (model ids must exist in it).
    ///
    /// # Errors
    /// Every bad entry, each naming file, line and key.
    pub fn from_toml(text: &str, file: &str, catalog: &Catalog) -> Result<Self, Vec<ConfigIssue>> {
        let raw: RawFile = parse_toml(text, file)?;
        let mut errors = Vec::new();
        let mut build = |r: RawRule, name: String| -> Option<Rule> {
            let mut resolve = |s: &toml::Spanned<String>, key: &str| {
                let t = target(s.get_ref(), catalog);
                if t.is_none() {
                    errors.push(ConfigIssue {
                        file: file.into(),
                        line: Some(line_at(text, s.span().start)),
                        message: format!("`{key}` of rule `{name}` must be small, mid, large or a model of models.toml, got {:?}", s.get_ref()),
                    });
                }
                t
            };
            let t = resolve(&r.target, "use");
            let fallbacks: Vec<Option<Target>> = r
                .fallbacks
                .iter()
                .map(|f| resolve(f, "fallbacks"))
                .collect();
            Some(Rule {
                name: name.clone(),
                when: r.when,
                target: t?,
                reason: r.reason,
                fallbacks: fallbacks.into_iter().collect::<Option<_>>()?,
            })
        };
        let rules: Vec<Option<Rule>> = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let name = r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1));
                build(r, name)
            })
            .collect();
        let default = build(raw.default, "default".into());
        match (
            rules.into_iter().collect::<Option<Vec<_>>>(),
            default,
            errors.is_empty(),
        ) {
            (Some(rules), Some(default), true) => Ok(Self { rules, default }),
            _ => Err(errors),
        }
    }

    /// The rules, in order, then the default.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(std::iter::once(&self.default))
    }

    /// Cost of `req` on the default rule's target, the figure `estimated_cost_under` reads.
    fn default_cost(
        &self,
        req: &RouteRequest,
        catalog: &Catalog,
        available: &dyn Fn(&ModelSpec) -> bool,
    ) -> Option<i64> {
        self.pick(&self.default.target, req, catalog, available)
            .map(|m| m.cost_micro_usd(req.input_tokens, req.max_output_tokens))
    }

    /// The model a target resolves to for `req`: the model itself, or the cheapest available
    /// model of the tier, when its context window fits.
    fn pick<'c>(
        &self,
        t: &Target,
        req: &RouteRequest,
        catalog: &'c Catalog,
        available: &dyn Fn(&ModelSpec) -> bool,
    ) -> Option<&'c ModelSpec> {
        let tokens = req.input_tokens + req.max_output_tokens;
        let fits = |m: &&ModelSpec| available(m) && m.context_window >= tokens;
        match t {
            Target::Model(id) => catalog.models.get(id).filter(fits),
            Target::Tier(tier) => catalog
                .models
                .values()
                .filter(|m| m.tier == *tier)
                .filter(fits)
                .min_by(|a, b| {
                    let ca = a.cost_micro_usd(req.input_tokens, req.max_output_tokens);
                    let cb = b.cost_micro_usd(req.input_tokens, req.max_output_tokens);
                    ca.cmp(&cb).then_with(|| a.id.cmp(&b.id))
                }),
        }
    }

    /// Routes a request to `prefer` (a model id or a tier of the catalogue: an agent's
    /// `model`) when an available model fits it, with the models of the usual route as its
    /// fallbacks; otherwise routes as usual.
    ///
    /// # Errors
    /// When `prefer` is neither a model nor a tier, or nothing of the usual route resolves.
    pub fn route_preferring(
        &self,
        prefer: &str,
        req: &RouteRequest,
        catalog: &Catalog,
        available: &dyn Fn(&ModelSpec) -> bool,
    ) -> Result<Decision, NoModel> {
        let target = if catalog.models.contains_key(prefer) {
            Target::Model(prefer.to_string())
        } else if let Some(t) = Tier::parse(prefer) {
            Target::Tier(t)
        } else {
            return Err(NoModel {
                rule: "agent-model".into(),
                why: format!(
                    "`{prefer}` is neither a model of the catalogue nor a tier (small, mid, large)"
                ),
            });
        };
        let usual = self.route(req, catalog, available);
        let Some(chosen) = self.pick(&target, req, catalog, available) else {
            return usual;
        };
        let fallbacks = match usual {
            Ok(d) => std::iter::once(d.model)
                .chain(d.fallbacks)
                .filter(|m| *m != chosen.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(Decision {
            rule: "agent-model".into(),
            reason: format!("the agent's model `{prefer}`"),
            model: chosen.id.clone(),
            fallbacks,
            estimated_tokens: req.input_tokens + req.max_output_tokens,
            estimated_cost_micro_usd: chosen
                .cost_micro_usd(req.input_tokens, req.max_output_tokens),
        })
    }

    /// Routes a request among `available` models (those whose provider is configured).
    ///
    /// # Errors
    /// When neither the matched rule's target nor its fallbacks resolve to an available model.
    pub fn route(
        &self,
        req: &RouteRequest,
        catalog: &Catalog,
        available: &dyn Fn(&ModelSpec) -> bool,
    ) -> Result<Decision, NoModel> {
        let tokens = req.input_tokens + req.max_output_tokens;
        let pick = |t: &Target| self.pick(t, req, catalog, available);
        let baseline = self.default_cost(req, catalog, available);
        let rule = self
            .rules
            .iter()
            .find(|r| matches(&r.when, req, tokens, baseline))
            .unwrap_or(&self.default);
        let mut chain = std::iter::once(&rule.target)
            .chain(rule.fallbacks.iter())
            .filter_map(pick);
        let Some(chosen) = chain.next() else {
            return Err(NoModel {
                rule: rule.name.clone(),
                why: format!(
                    "no available model of its targets has a context window of {tokens} tokens"
                ),
            });
        };
        let mut fallbacks: Vec<String> = Vec::new();
        for m in chain {
            if m.id != chosen.id && !fallbacks.contains(&m.id) {
                fallbacks.push(m.id.clone());
            }
        }
        Ok(Decision {
            rule: rule.name.clone(),
            reason: rule.reason.clone(),
            model: chosen.id.clone(),
            fallbacks,
            estimated_tokens: tokens,
            estimated_cost_micro_usd: chosen
                .cost_micro_usd(req.input_tokens, req.max_output_tokens),
        })
    }
}

/// Each condition `w` sets, with whether it holds for `req` and why, in words.
fn conditions(
    w: &When,
    req: &RouteRequest,
    tokens: u64,
    baseline_micro_usd: Option<i64>,
) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    if let Some(n) = w.estimated_tokens_over {
        let ok = tokens > n;
        out.push((
            ok,
            format!(
                "estimated tokens {tokens} {} over {n}",
                if ok { "is" } else { "is not" }
            ),
        ));
    }
    if let Some(n) = w.estimated_tokens_under {
        let ok = tokens <= n;
        out.push((
            ok,
            format!(
                "estimated tokens {tokens} {} at most {n}",
                if ok { "is" } else { "is not" }
            ),
        ));
    }
    if let Some(t) = &w.tool {
        let ok = *t == req.tool;
        out.push((
            ok,
            if ok {
                format!("tool is `{t}`")
            } else {
                format!("tool is `{}`, not `{t}`", req.tool)
            },
        ));
    }
    if let Some(p) = w.priority {
        let ok = p == req.priority;
        let name = |p: Priority| format!("{p:?}").to_lowercase();
        out.push((
            ok,
            if ok {
                format!("priority is {}", name(p))
            } else {
                format!("priority is {}, not {}", name(req.priority), name(p))
            },
        ));
    }
    if let Some(usd) = w.estimated_cost_under {
        let limit = (usd * 1e6).round() as i64;
        match baseline_micro_usd {
            Some(c) => {
                let ok = c < limit;
                out.push((
                    ok,
                    format!(
                        "estimated cost {} on the default route {} under {}",
                        super::budget::usd(c),
                        if ok { "is" } else { "is not" },
                        super::budget::usd(limit)
                    ),
                ));
            }
            None => out.push((
                false,
                "no model of the default route is available to estimate the cost".into(),
            )),
        }
    }
    if let Some(r) = w.requires_reasoning {
        let ok = r == req.requires_reasoning;
        out.push((
            ok,
            format!(
                "requires reasoning is {}{}",
                req.requires_reasoning,
                if ok {
                    String::new()
                } else {
                    format!(", not {r}")
                }
            ),
        ));
    }
    if let Some(r) = w.agent_role {
        let ok = Some(r) == req.agent_role;
        let have = req.agent_role.map_or("none".to_string(), |r| r.to_string());
        out.push((
            ok,
            if ok {
                format!("agent role is {r}")
            } else {
                format!("agent role is {have}, not {r}")
            },
        ));
    }
    if let Some(c) = &w.capability {
        let ok = req.capabilities.contains(c);
        out.push((
            ok,
            format!(
                "the task {} capability `{c}`",
                if ok { "requires" } else { "does not require" }
            ),
        ));
    }
    out
}

fn matches(w: &When, req: &RouteRequest, tokens: u64, baseline_micro_usd: Option<i64>) -> bool {
    conditions(w, req, tokens, baseline_micro_usd)
        .iter()
        .all(|(ok, _)| *ok)
}

/// How one rule fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCheck {
    /// The rule.
    pub rule: String,
    /// Whether every condition holds (the default always does).
    pub matched: bool,
    /// Each condition and whether it holds.
    pub conditions: Vec<Condition>,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// Whether it holds.
    pub holds: bool,
    /// What it checks and found, in words.
    pub text: String,
}

/// Why a request routes where it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Rules in order, up to and including the one that matched.
    pub checks: Vec<RuleCheck>,
    /// The decision.
    pub decision: Result<Decision, NoModel>,
}

impl Router {
    /// Routes `req` and says why: each rule's conditions up to the first match.
    pub fn explain(
        &self,
        req: &RouteRequest,
        catalog: &Catalog,
        available: &dyn Fn(&ModelSpec) -> bool,
    ) -> Explanation {
        let decision = self.route(req, catalog, available);
        let tokens = req.input_tokens + req.max_output_tokens;
        let baseline = self.default_cost(req, catalog, available);
        let mut checks = Vec::new();
        for r in self.rules() {
            let conds: Vec<Condition> = conditions(&r.when, req, tokens, baseline)
                .into_iter()
                .map(|(holds, text)| Condition { holds, text })
                .collect();
            let matched = conds.iter().all(|c| c.holds);
            checks.push(RuleCheck {
                rule: r.name.clone(),
                matched,
                conditions: conds,
            });
            if matched {
                break;
            }
        }
        Explanation { checks, decision }
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
