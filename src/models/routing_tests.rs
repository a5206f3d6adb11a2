//! Tests of the routing engine: rules, fallbacks, estimates, and the shipped policies.

use super::*;

const MODELS: &str = r#"
[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[models.opus]
provider = "anthropic"
name = "o"
tier = "large"
context_window = 200000
input_usd_per_mtok = 15.0
output_usd_per_mtok = 75.0
[models.sonnet]
provider = "anthropic"
name = "s"
tier = "mid"
context_window = 200000
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
[models.haiku]
provider = "anthropic"
name = "h"
tier = "small"
context_window = 200000
input_usd_per_mtok = 1.0
output_usd_per_mtok = 5.0
[models.gpt-large]
provider = "openai"
name = "g"
tier = "large"
context_window = 1000000
input_usd_per_mtok = 2.0
output_usd_per_mtok = 8.0
[models.gpt-small]
provider = "openai"
name = "gs"
tier = "small"
context_window = 1000000
input_usd_per_mtok = 0.1
output_usd_per_mtok = 0.4
"#;

const RULES: &str = r#"
[[rules]]
name = "long-context"
when = { estimated_tokens_over = 100000 }
use = "large"
reason = "Long context requires the largest-context model"
[[rules]]
name = "echo"
when = { tool = "test:echo" }
use = "small"
reason = "Simple task can use the small model"
[[rules]]
name = "cheap-low-priority"
when = { priority = "low", estimated_cost_under = 0.01 }
use = "small"
reason = "Low priority, low cost task"
[[rules]]
name = "reasoning"
when = { requires_reasoning = true }
use = "mid"
reason = "Complex reasoning required"
[default]
use = "mid"
fallbacks = ["small"]
reason = "Default model"
"#;

fn req(tokens: u64, tool: &str, priority: Priority) -> RouteRequest {
    RouteRequest {
        input_tokens: tokens,
        max_output_tokens: 1000,
        tool: tool.into(),
        priority,
        requires_reasoning: false,
        agent_role: None,
        capabilities: vec![],
    }
}

fn setup() -> (Catalog, Router) {
    let c = Catalog::from_toml(MODELS, "models.toml").unwrap();
    let r = Router::from_toml(RULES, "routing.toml", &c).unwrap();
    (c, r)
}

#[test]
fn the_spec_rules_route_as_described() {
    let (c, r) = setup();
    let all = |_: &ModelSpec| true;
    let d = r
        .route(&req(150_000, "llm:generate", Priority::Normal), &c, &all)
        .unwrap();
    assert_eq!(
        (d.rule.as_str(), d.model.as_str()),
        ("long-context", "gpt-large")
    );
    let d = r
        .route(&req(500, "test:echo", Priority::Normal), &c, &all)
        .unwrap();
    assert_eq!((d.rule.as_str(), d.model.as_str()), ("echo", "gpt-small"));
    // On the default (mid) model: 500 input + 1000 output tokens cost $0.0165, over $0.01 …
    let d = r
        .route(&req(500, "llm:generate", Priority::Low), &c, &all)
        .unwrap();
    assert_eq!(d.rule, "default");
    // … and 500 + 200 cost $0.0045, under it.
    let cheap = RouteRequest {
        max_output_tokens: 200,
        ..req(500, "llm:generate", Priority::Low)
    };
    let d = r.route(&cheap, &c, &all).unwrap();
    assert_eq!(
        (d.rule.as_str(), d.model.as_str()),
        ("cheap-low-priority", "gpt-small")
    );
    let d = r
        .route(&req(500, "llm:generate", Priority::Normal), &c, &all)
        .unwrap();
    assert_eq!((d.rule.as_str(), d.model.as_str()), ("default", "sonnet"));
    assert_eq!(d.fallbacks, vec!["gpt-small".to_string()]);
}

#[test]
fn with_one_provider_every_rule_maps_to_its_model_of_the_tier() {
    let (c, r) = setup();
    let anthropic_only = |m: &ModelSpec| m.provider == "anthropic";
    let d = r
        .route(&req(150_000, "x", Priority::Normal), &c, &anthropic_only)
        .unwrap();
    assert_eq!(d.model, "opus");
    let d = r
        .route(
            &req(500, "test:echo", Priority::Normal),
            &c,
            &anthropic_only,
        )
        .unwrap();
    assert_eq!(d.model, "haiku");
    let err = r
        .route(&req(900_000, "x", Priority::Normal), &c, &anthropic_only)
        .unwrap_err();
    assert!(err.to_string().contains("context window"), "{err}");
}

#[test]
fn rules_that_name_unknown_models_fail_at_load_with_their_line() {
    let c = Catalog::from_toml(MODELS, "models.toml").unwrap();
    let e = Router::from_toml(
        "[default]\nuse = \"nope\"\nreason = \"x\"\n",
        "routing.toml",
        &c,
    )
    .unwrap_err();
    assert_eq!(e[0].to_string(), "routing.toml:2: `use` of rule `default` must be small, mid, large or a model of models.toml, got \"nope\"");
}

mod shipped {
    use super::super::*;

    #[test]
    fn the_shipped_policies_load_and_route_with_either_provider() {
        let c = Catalog::from_toml(
            include_str!("../../policies/models.toml"),
            "policies/models.toml",
        )
        .unwrap();
        let r = Router::from_toml(
            include_str!("../../policies/routing.toml"),
            "policies/routing.toml",
            &c,
        )
        .unwrap();
        let req = RouteRequest {
            input_tokens: 2000,
            max_output_tokens: 1000,
            tool: "llm:generate".into(),
            priority: Priority::Normal,
            requires_reasoning: false,
            agent_role: None,
            capabilities: vec![],
        };
        for (provider, model) in [("anthropic", "claude-sonnet"), ("openai", "gpt-mid")] {
            let d = r
                .route(&req, &c, &|m: &ModelSpec| m.provider == provider)
                .unwrap();
            assert_eq!(d.model, model);
        }
    }
}
