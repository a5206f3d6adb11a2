//! The model catalogue (`policies/models.toml`): providers (kind, base URL, the environment
//! variable holding the key) and models (provider, provider's model name, tier, context
//! window, USD prices per million tokens, capabilities). Keys never live in the file.
//!
//! ```toml
//! [providers.anthropic]
//! kind = "anthropic"
//! base_url = "https://api.anthropic.com"
//! api_key_env = "ANTHROPIC_API_KEY"
//!
//! [models.claude-sonnet]
//! provider = "anthropic"
//! name = "claude-sonnet-4-5"
//! tier = "mid"
//! context_window = 200000
//! input_usd_per_mtok = 3.0
//! output_usd_per_mtok = 15.0
//! cache_read_usd_per_mtok = 0.3    # prompt-cache reads (default: the input price)
//! cache_write_usd_per_mtok = 3.75  # prompt-cache writes (default: the input price)
//! capabilities = ["reasoning"]
//! ```

use crate::config::{line_at, parse_toml, ConfigIssue};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A model's size class; routing rules name tiers so they work with any provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Small and fast.
    Small,
    /// The everyday model.
    Mid,
    /// The most capable.
    Large,
}

impl Tier {
    /// Parses `small`, `mid` or `large`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "small" => Some(Self::Small),
            "mid" => Some(Self::Mid),
            "large" => Some(Self::Large),
            _ => None,
        }
    }
}

/// Wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI-compatible chat completions (also local servers).
    OpenAi,
}

/// A provider entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    /// Its name in the file.
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// Base URL (an environment override wins, applied by the caller).
    pub base_url: String,
    /// The environment variable holding the key; `None` for servers that need none.
    pub api_key_env: Option<String>,
    /// The environment variable whose value, when set, replaces `base_url`.
    pub base_url_env: Option<String>,
}

/// A model entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The id routing rules use.
    pub id: String,
    /// Its provider.
    pub provider: String,
    /// The provider's name for it.
    pub name: String,
    /// Tier.
    pub tier: Tier,
    /// Context window in tokens.
    pub context_window: u64,
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
    /// USD per million input tokens read from the provider's prompt cache.
    pub cache_read_usd_per_mtok: f64,
    /// USD per million input tokens written to the provider's prompt cache.
    pub cache_write_usd_per_mtok: f64,
    /// Capabilities, e.g. `reasoning`.
    pub capabilities: Vec<String>,
}

impl ModelSpec {
    /// Cost in micro-USD of `input` and `output` tokens.
    pub fn cost_micro_usd(&self, input: u64, output: u64) -> i64 {
        let usd = input as f64 * self.input_usd_per_mtok / 1e6
            + output as f64 * self.output_usd_per_mtok / 1e6;
        (usd * 1e6).round() as i64
    }

    /// Cost in micro-USD of `input` tokens (of which `cache_read` were read from the prompt
    /// cache and `cache_write` written to it, each at its price) and `output` tokens.
    pub fn cost_with_cache_micro_usd(
        &self,
        input: u64,
        output: u64,
        cache_read: u64,
        cache_write: u64,
    ) -> i64 {
        let plain = input.saturating_sub(cache_read.saturating_add(cache_write));
        let usd = plain as f64 * self.input_usd_per_mtok / 1e6
            + cache_read as f64 * self.cache_read_usd_per_mtok / 1e6
            + cache_write as f64 * self.cache_write_usd_per_mtok / 1e6
            + output as f64 * self.output_usd_per_mtok / 1e6;
        (usd * 1e6).round() as i64
    }
}

/// The validated catalogue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderSpec>,
    /// Models by id.
    pub models: BTreeMap<String, ModelSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Spanned<String>,
    base_url: Spanned<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    base_url_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    provider: Spanned<String>,
    name: String,
    tier: Spanned<String>,
    context_window: Spanned<i64>,
    input_usd_per_mtok: Spanned<f64>,
    output_usd_per_mtok: Spanned<f64>,
    #[serde(default)]
    cache_read_usd_per_mtok: Option<Spanned<f64>>,
    #[serde(default)]
    cache_write_usd_per_mtok: Option<Spanned<f64>>,
    #[serde(default)]
    capabilities: Vec<String>,
}

impl Catalog {
    /// Parses `models.toml`.
    ///
    /// # Errors
    /// Every bad entry, each naming file, line and key.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, Vec<ConfigIssue>> {
        let issue = |offset: usize, message: String| ConfigIssue {
            file: file.into(),
            line: Some(line_at(text, offset)),
            message,
        };
        let raw: RawFile = parse_toml(text, file)?;
        let mut errors = Vec::new();
        let mut providers = BTreeMap::new();
        for (name, p) in raw.providers {
            let kind = match p.kind.get_ref().as_str() {
                "anthropic" => ProviderKind::Anthropic,
                "openai" => ProviderKind::OpenAi,
                other => {
                    errors.push(issue(
                        p.kind.span().start,
                        format!(
                            "`providers.{name}.kind` must be anthropic or openai, got {other:?}"
                        ),
                    ));
                    continue;
                }
            };
            let url = p.base_url.get_ref().trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(issue(
                    p.base_url.span().start,
                    format!("`providers.{name}.base_url` must be an http(s) URL, got {url:?}"),
                ));
                continue;
            }
            providers.insert(
                name.clone(),
                ProviderSpec {
                    name,
                    kind,
                    base_url: url.to_string(),
                    api_key_env: p.api_key_env,
                    base_url_env: p.base_url_env,
                },
            );
        }
        let mut models = BTreeMap::new();
        for (id, m) in raw.models {
            let before = errors.len();
            if !providers.contains_key(m.provider.get_ref()) {
                errors.push(issue(
                    m.provider.span().start,
                    format!(
                        "`models.{id}.provider` names unknown provider {:?}",
                        m.provider.get_ref()
                    ),
                ));
            }
            let tier = Tier::parse(m.tier.get_ref());
            if tier.is_none() {
                errors.push(issue(
                    m.tier.span().start,
                    format!(
                        "`models.{id}.tier` must be small, mid or large, got {:?}",
                        m.tier.get_ref()
                    ),
                ));
            }
            if *m.context_window.get_ref() < 1 {
                errors.push(issue(
                    m.context_window.span().start,
                    format!(
                        "`models.{id}.context_window` must be at least 1, got {}",
                        m.context_window.get_ref()
                    ),
                ));
            }
            for (key, v) in [
                ("input_usd_per_mtok", Some(&m.input_usd_per_mtok)),
                ("output_usd_per_mtok", Some(&m.output_usd_per_mtok)),
                (
                    "cache_read_usd_per_mtok",
                    m.cache_read_usd_per_mtok.as_ref(),
                ),
                (
                    "cache_write_usd_per_mtok",
                    m.cache_write_usd_per_mtok.as_ref(),
                ),
            ] {
                let Some(v) = v else { continue };
                if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) {
                    errors.push(issue(
                        v.span().start,
                        format!(
                            "`models.{id}.{key}` must be a price of 0 or more, got {}",
                            v.get_ref()
                        ),
                    ));
                }
            }
            if let (Some(tier), true) = (tier, errors.len() == before) {
                models.insert(
                    id.clone(),
                    ModelSpec {
                        id,
                        provider: m.provider.into_inner(),
                        name: m.name,
                        tier,
                        context_window: *m.context_window.get_ref() as u64,
                        input_usd_per_mtok: *m.input_usd_per_mtok.get_ref(),
                        output_usd_per_mtok: *m.output_usd_per_mtok.get_ref(),
                        cache_read_usd_per_mtok: m
                            .cache_read_usd_per_mtok
                            .as_ref()
                            .map_or(*m.input_usd_per_mtok.get_ref(), |v| *v.get_ref()),
                        cache_write_usd_per_mtok: m
                            .cache_write_usd_per_mtok
                            .as_ref()
                            .map_or(*m.input_usd_per_mtok.get_ref(), |v| *v.get_ref()),
                        capabilities: m.capabilities,
                    },
                );
            }
        }
        if errors.is_empty() {
            Ok(Self { providers, models })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[providers.a]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\napi_key_env = \"ANTHROPIC_API_KEY\"\n\n[models.s]\nprovider = \"a\"\nname = \"small-1\"\ntier = \"small\"\ncontext_window = 200000\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 5.0\n";

    #[test]
    fn a_catalogue_parses_and_prices_calls() {
        let c = Catalog::from_toml(FILE, "models.toml").unwrap();
        let m = &c.models["s"];
        assert_eq!(m.tier, Tier::Small);
        assert_eq!(m.cost_micro_usd(1_000_000, 100_000), 1_500_000);
    }

    #[test]
    fn bad_entries_name_file_line_and_key() {
        let bad = FILE
            .replace("tier = \"small\"", "tier = \"huge\"")
            .replace("provider = \"a\"", "provider = \"zz\"");
        let e = Catalog::from_toml(&bad, "models.toml").unwrap_err();
        let text: Vec<String> = e.iter().map(|i| i.to_string()).collect();
        assert!(
            text.contains(
                &"models.toml:7: `models.s.provider` names unknown provider \"zz\"".to_string()
            ),
            "{text:?}"
        );
        assert!(
            text.contains(
                &"models.toml:9: `models.s.tier` must be small, mid or large, got \"huge\""
                    .to_string()
            ),
            "{text:?}"
        );
    }
}
