//! Which models answer a request, in order: the first choice, then the
//! fallbacks tried on a timeout, a 429 or a 5xx.
//!
//! The first choice, by precedence: the model the request names → the
//! plan's (or the user's) default for the request's role → the selector's
//! pick for the task and complexity → the global default. Fallbacks are the
//! other capable models of the same tier, then of the other tiers. Every
//! model in the chain can do the task (images need vision), fits the
//! request in its context, is allowed to the caller and has a configured
//! provider. Within a tier, `low` and `medium` try the cheapest first;
//! `high` tries the most expensive (the most capable) first.

use std::collections::{HashMap, HashSet};

use super::config::{Complexity, ModelConfig};

/// What the request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub task: &'a str,
    pub complexity: Complexity,
    /// An explicit model (catalog id).
    pub model: Option<&'a str>,
    pub images: bool,
    /// Input estimate plus the output asked for.
    pub tokens: u64,
}

/// What the caller's plan (with the user's overrides) lets it use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    /// Default model for the request's role.
    pub default: Option<&'a str>,
    /// Models allowed to the role; `None` is every model.
    pub allowed: Option<&'a [String]>,
    /// Providers the tenant brought its own key for: their models are
    /// callable even where the operator has no key.
    pub own_keys: Option<&'a HashSet<String>>,
}

/// Why no chain could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no model {0:?} in the catalog")]
    UnknownModel(String),
    #[error("model {0:?} is not allowed on this plan")]
    NotAllowed(String),
    #[error("model {model:?} cannot serve this request: {why}")]
    Incapable { model: String, why: String },
    #[error("model {0:?} has no configured provider")]
    NotConfigured(String),
    #[error("no configured model can serve task {0:?} here")]
    NoModel(String),
}

/// The model catalog, with which providers have keys.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelConfig>,
    by_id: HashMap<String, usize>,
    configured: HashSet<String>,
}

impl Catalog {
    /// `models`, where the providers named in `configured` can be called.
    pub fn new(models: Vec<ModelConfig>, configured: HashSet<String>) -> Self {
        let by_id = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        Self {
            models,
            by_id,
            configured,
        }
    }

    /// A model by catalog id.
    pub fn get(&self, id: &str) -> Option<&ModelConfig> {
        self.by_id.get(id).map(|i| &self.models[*i])
    }

    /// Every model.
    pub fn models(&self) -> &[ModelConfig] {
        &self.models
    }

    /// True when `model`'s provider has a key.
    pub fn is_configured(&self, model: &ModelConfig) -> bool {
        self.configured.contains(&model.provider)
    }

    fn incapable(model: &ModelConfig, ask: &Ask<'_>) -> Option<String> {
        if ask.images && !model.vision {
            return Some("it does not accept images".into());
        }
        if ask.tokens > model.context {
            return Some(format!(
                "the request needs about {} tokens, its context holds {}",
                ask.tokens, model.context
            ));
        }
        let task = if ask.task == "embed" {
            "embed"
        } else {
            ask.task
        };
        if !model.tasks.iter().any(|t| t == task) {
            return Some(format!("it does not serve task {task:?}"));
        }
        None
    }

    fn allowed(model: &ModelConfig, policy: &Policy<'_>) -> bool {
        policy.allowed.is_none_or(|list| list.contains(&model.id))
    }

    fn usable(&self, model: &ModelConfig, ask: &Ask<'_>, policy: &Policy<'_>) -> bool {
        Self::incapable(model, ask).is_none()
            && Self::allowed(model, policy)
            && self.callable(model, policy)
    }

    /// The operator or the tenant has a key for `model`'s provider.
    fn callable(&self, model: &ModelConfig, policy: &Policy<'_>) -> bool {
        self.is_configured(model)
            || policy
                .own_keys
                .is_some_and(|own| own.contains(&model.provider))
    }

    /// The chain for `ask` under `policy`, at most `max` long (at least 1).
    pub fn chain(
        &self,
        ask: &Ask<'_>,
        policy: &Policy<'_>,
        global_default: &str,
        max: usize,
    ) -> Result<Vec<&ModelConfig>, SelectError> {
        let first = match ask.model {
            Some(id) => {
                let model = self
                    .get(id)
                    .ok_or_else(|| SelectError::UnknownModel(id.into()))?;
                if !Self::allowed(model, policy) {
                    return Err(SelectError::NotAllowed(id.into()));
                }
                if let Some(why) = Self::incapable(model, ask) {
                    return Err(SelectError::Incapable {
                        model: id.into(),
                        why,
                    });
                }
                if !self.callable(model, policy) {
                    return Err(SelectError::NotConfigured(id.into()));
                }
                Some(model)
            }
            None => None,
        };
        let mut in_tier: Vec<&ModelConfig> = self
            .models
            .iter()
            .filter(|m| m.tiers.contains(&ask.complexity) && self.usable(m, ask, policy))
            .collect();
        let price = |m: &ModelConfig| m.input_per_1k.0.saturating_add(m.output_per_1k.0);
        in_tier.sort_by_key(|m| price(m));
        if ask.complexity == Complexity::High {
            in_tier.reverse();
        }
        let mut others: Vec<&ModelConfig> = self
            .models
            .iter()
            .filter(|m| !m.tiers.contains(&ask.complexity) && self.usable(m, ask, policy))
            .collect();
        others.sort_by_key(|m| price(m));

        let preferred = policy
            .default
            .and_then(|id| self.get(id))
            .filter(|m| self.usable(m, ask, policy));
        let global = self
            .get(global_default)
            .filter(|m| self.usable(m, ask, policy));
        let first = first
            .or(preferred)
            .or_else(|| in_tier.first().copied())
            .or(global)
            .or_else(|| others.first().copied())
            .ok_or_else(|| SelectError::NoModel(ask.task.into()))?;

        let mut chain = vec![first];
        for model in in_tier.into_iter().chain(others) {
            if chain.len() >= max.max(1) {
                break;
            }
            if !chain.iter().any(|m| m.id == model.id) {
                chain.push(model);
            }
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::config::LlmConfig;

    fn catalog(configured: &[&str]) -> Catalog {
        Catalog::new(
            LlmConfig::default().models,
            configured.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    fn ids(chain: &[&ModelConfig]) -> Vec<String> {
        chain.iter().map(|m| m.id.clone()).collect()
    }

    fn ask(task: &str, complexity: Complexity) -> Ask<'_> {
        Ask {
            task,
            complexity,
            model: None,
            images: false,
            tokens: 1_000,
        }
    }

    #[test]
    fn low_tries_the_cheapest_first_high_the_most_capable() {
        let c = catalog(&["openai", "anthropic", "gemini"]);
        let policy = Policy::default();
        let low = c.chain(&ask("chat", Complexity::Low), &policy, "gpt-4o-mini", 3);
        assert_eq!(
            ids(&low.expect("chain")),
            ["gemini-flash", "gpt-4o-mini", "claude-haiku"]
        );
        let high = c.chain(&ask("code", Complexity::High), &policy, "gpt-4o-mini", 3);
        assert_eq!(
            ids(&high.expect("chain")),
            ["claude-opus", "claude-sonnet", "gpt-4o"]
        );
    }

    #[test]
    fn precedence_is_request_then_plan_default_then_selector() {
        let c = catalog(&["openai", "anthropic", "gemini"]);
        let allowed = vec!["gpt-4o-mini".to_owned(), "claude-haiku".to_owned()];
        let policy = Policy {
            default: Some("claude-haiku"),
            allowed: Some(&allowed),
            own_keys: None,
        };
        let chain = c
            .chain(&ask("chat", Complexity::Low), &policy, "gpt-4o-mini", 3)
            .expect("chain");
        assert_eq!(ids(&chain), ["claude-haiku", "gpt-4o-mini"]);
        let explicit = Ask {
            model: Some("gpt-4o-mini"),
            ..ask("chat", Complexity::Low)
        };
        let chain = c.chain(&explicit, &policy, "x", 2).expect("chain");
        assert_eq!(ids(&chain), ["gpt-4o-mini", "claude-haiku"]);
        let forbidden = Ask {
            model: Some("claude-opus"),
            ..ask("chat", Complexity::Low)
        };
        assert_eq!(
            c.chain(&forbidden, &policy, "x", 2).map(|c| ids(&c)),
            Err(SelectError::NotAllowed("claude-opus".into()))
        );
    }

    #[test]
    fn unconfigured_providers_and_incapable_models_are_skipped() {
        let c = catalog(&["anthropic"]);
        let chain = c
            .chain(
                &ask("chat", Complexity::Low),
                &Policy::default(),
                "gpt-4o-mini",
                3,
            )
            .expect("chain");
        assert_eq!(
            ids(&chain),
            ["claude-haiku", "claude-sonnet", "claude-opus"]
        );
        let explicit = Ask {
            model: Some("gpt-4o"),
            ..ask("chat", Complexity::Low)
        };
        assert_eq!(
            c.chain(&explicit, &Policy::default(), "x", 3)
                .map(|c| ids(&c)),
            Err(SelectError::NotConfigured("gpt-4o".into()))
        );
        let huge = Ask {
            tokens: 500_000,
            ..ask("chat", Complexity::Low)
        };
        assert_eq!(
            c.chain(&huge, &Policy::default(), "x", 3).map(|c| ids(&c)),
            Err(SelectError::NoModel("chat".into()))
        );
        let openai = catalog(&["openai"]);
        let embed = openai
            .chain(&ask("embed", Complexity::Low), &Policy::default(), "x", 3)
            .expect("chain");
        assert_eq!(ids(&embed), ["openai-embed-small"]);
    }

    #[test]
    fn a_tenants_own_key_makes_its_providers_models_callable() {
        let c = catalog(&["gemini"]);
        let explicit = Ask {
            model: Some("gpt-4o-mini"),
            ..ask("chat", Complexity::Low)
        };
        assert!(matches!(
            c.chain(&explicit, &Policy::default(), "gemini-flash", 3),
            Err(SelectError::NotConfigured(_))
        ));
        let own: HashSet<String> = ["openai".to_owned()].into_iter().collect();
        let policy = Policy {
            own_keys: Some(&own),
            ..Policy::default()
        };
        let chain = c
            .chain(&explicit, &policy, "gemini-flash", 3)
            .expect("chain");
        assert_eq!(ids(&chain)[0], "gpt-4o-mini");
    }
}
