//! Model configuration: the catalogue (`models.toml`), routing rules (`routing.toml`) and
//! budgets (`budgets.toml`), shipped or from a directory, with the keys and URLs of the
//! providers; `Models::build` makes it callable.

use super::budget::Budgets;
use super::catalog::{Catalog, ProviderKind};
use super::routing::Router;
use super::{ApiKey, Provider, RetryPolicy, Timeouts};
use crate::config::ConfigErrors;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Model configuration: catalogue, routing rules, budgets, keys and URLs.
#[derive(Clone)]
pub struct ModelsConfig {
    /// The catalogue.
    pub catalog: Catalog,
    /// The routing rules.
    pub router: Router,
    /// The budgets.
    pub budgets: Budgets,
    /// Client timeouts.
    pub timeouts: Timeouts,
    /// Retries of one model.
    pub retry: RetryPolicy,
    pub(super) keys: HashMap<String, ApiKey>,
    pub(super) base_urls: HashMap<String, String>,
    pub(super) custom: Vec<Arc<dyn Provider>>,
}

const SHIPPED_MODELS: &str = include_str!("../../policies/models.toml");
const SHIPPED_ROUTING: &str = include_str!("../../policies/routing.toml");
const SHIPPED_BUDGETS: &str = include_str!("../../policies/budgets.toml");

impl ModelsConfig {
    /// The shipped `models.toml`, `routing.toml` and `budgets.toml`, with no keys.
    ///
    /// # Panics
    /// Never: the shipped files are tested to load.
    pub fn shipped() -> Self {
        Self::load(None).expect("the shipped policies load (tested)")
    }

    /// Loads `models.toml`, `routing.toml` and `budgets.toml` from `dir`; a file that is not
    /// there is replaced by the shipped one.
    ///
    /// # Errors
    /// Every bad entry of every file, each naming file, line and key.
    pub fn load(dir: Option<&Path>) -> Result<Self, ConfigErrors> {
        let mut issues = Vec::new();
        let mut read = |file: &str, shipped: &'static str| match crate::config::read_policy(
            dir, file, shipped,
        ) {
            Ok(x) => Some(x),
            Err(e) => {
                issues.push(e);
                None
            }
        };
        let files = (
            read("models.toml", SHIPPED_MODELS),
            read("routing.toml", SHIPPED_ROUTING),
            read("budgets.toml", SHIPPED_BUDGETS),
        );
        let (Some((mt, mf)), Some((rt, rf)), Some((bt, bf))) = files else {
            return Err(ConfigErrors(issues));
        };
        let catalog = Catalog::from_toml(&mt, &mf).map_err(ConfigErrors)?;
        let router = Router::from_toml(&rt, &rf, &catalog);
        let budgets = Budgets::from_toml(&bt, &bf);
        match (router, budgets) {
            (Ok(router), Ok(budgets)) => Ok(Self {
                catalog,
                router,
                budgets,
                timeouts: Timeouts::default(),
                retry: RetryPolicy::default(),
                keys: HashMap::new(),
                base_urls: HashMap::new(),
                custom: Vec::new(),
            }),
            (r, b) => Err(ConfigErrors(
                r.err()
                    .into_iter()
                    .flatten()
                    .chain(b.err().into_iter().flatten())
                    .collect(),
            )),
        }
    }

    /// The key of `provider` (a name in `models.toml`).
    pub fn api_key(mut self, provider: &str, key: ApiKey) -> Self {
        self.keys.insert(provider.to_string(), key);
        self
    }

    /// Replaces the base URL of `provider`; a provider given a URL this way counts as
    /// configured even without a key (local OpenAI-compatible servers need none).
    pub fn base_url(mut self, provider: &str, url: impl Into<String>) -> Self {
        self.base_urls.insert(provider.to_string(), url.into());
        self
    }

    /// Serves `provider.name()` (a provider of `models.toml`) with this implementation.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.custom.push(provider);
        self
    }

    /// Applies each provider's `api_key_env` and `base_url_env` through `var` (the CLI
    /// passes the process environment).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let providers: Vec<_> = self.catalog.providers.values().cloned().collect();
        for p in providers {
            if let Some(k) = p.api_key_env.as_deref().and_then(&var) {
                if !k.trim().is_empty() {
                    self = self.api_key(&p.name, ApiKey::new(k.trim()));
                }
            }
            if let Some(u) = p.base_url_env.as_deref().and_then(&var) {
                if !u.trim().is_empty() {
                    self = self.base_url(&p.name, u.trim());
                }
            }
        }
        self
    }

    /// One sentence saying how to configure a provider.
    pub fn how_to_configure(&self) -> String {
        let keys: Vec<&str> = self
            .catalog
            .providers
            .values()
            .filter_map(|p| p.api_key_env.as_deref())
            .collect();
        let local = self
            .catalog
            .providers
            .values()
            .find(|p| p.kind == ProviderKind::OpenAi)
            .and_then(|p| p.base_url_env.as_deref());
        let mut s = String::from("no model provider is configured: ");
        if keys.is_empty() {
            s.push_str("add a provider to policies/models.toml");
        } else {
            s.push_str(&format!("set {}", keys.join(" or ")));
        }
        if let Some(env) = local {
            s.push_str(&format!(
                ", or set {env} to a local OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for Ollama)"
            ));
        }
        s
    }
}
