//! `[llm]` in `weft.toml`: the providers (where they are, where their keys
//! come from) and the model catalog (what each model costs and can do).

use serde::{Deserialize, Serialize};
use weft_llm_wire::ProviderKind;

use crate::billing::{Micro, Price};

/// The gateway's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The model (catalog id) used when nothing else chose one.
    pub default_model: String,
    /// Output tokens asked for when a request does not say.
    pub default_max_tokens: u32,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: u32,
    /// Models tried for one request at most (the first and its fallbacks).
    pub max_attempts: usize,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
}

/// One provider account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name the models refer to.
    pub name: String,
    pub kind: ProviderKind,
    /// API root; the provider's public one when empty.
    #[serde(default)]
    pub base_url: String,
    /// The key itself (prefer `api_key_env`).
    #[serde(default)]
    pub api_key: String,
    /// Environment variable holding the key.
    #[serde(default)]
    pub api_key_env: String,
    /// Per attempt.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    60_000
}

/// How hard a request is; the selector picks from the models of its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    #[default]
    Low,
    Medium,
    High,
}

/// One model of the catalog.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Catalog id (what plans and requests name).
    pub id: String,
    /// A provider's `name`.
    pub provider: String,
    /// The provider's model id.
    pub model: String,
    /// Credits per 1,000 input / output tokens (integers or decimal strings).
    pub input_per_1k: Micro,
    pub output_per_1k: Micro,
    /// Context window, tokens.
    pub context: u64,
    /// Accepts images.
    #[serde(default)]
    pub vision: bool,
    /// Task types it serves (`chat`, `code`, `analysis`, `vision`,
    /// `summarize`, `extract`, `embed`).
    pub tasks: Vec<String>,
    /// Complexities it is picked for.
    pub tiers: Vec<Complexity>,
}

impl ModelConfig {
    /// Its price.
    pub fn price(&self) -> Price {
        Price {
            input_per_1k: self.input_per_1k,
            output_per_1k: self.output_per_1k,
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        let provider = |name: &str, kind, env: &str| ProviderConfig {
            name: name.into(),
            kind,
            base_url: String::new(),
            api_key: String::new(),
            api_key_env: env.into(),
            timeout_ms: default_timeout_ms(),
        };
        let chat: &[&str] = &["chat", "code", "analysis", "summarize", "extract", "vision"];
        let model =
            |id: &str, provider: &str, model: &str, credits: i64, context, tiers: &[Complexity]| {
                ModelConfig {
                    id: id.into(),
                    provider: provider.into(),
                    model: model.into(),
                    input_per_1k: Micro::credits(credits),
                    output_per_1k: Micro::credits(credits),
                    context,
                    vision: true,
                    tasks: chat.iter().map(|t| (*t).to_owned()).collect(),
                    tiers: tiers.to_vec(),
                }
            };
        use Complexity::{High, Low, Medium};
        let mut models = vec![
            model(
                "gemini-flash",
                "gemini",
                "gemini-2.0-flash",
                1,
                1_048_576,
                &[Low],
            ),
            model("gpt-4o-mini", "openai", "gpt-4o-mini", 2, 128_000, &[Low]),
            model(
                "claude-haiku",
                "anthropic",
                "claude-3-5-haiku-latest",
                5,
                200_000,
                &[Low, Medium],
            ),
            model("gpt-4o", "openai", "gpt-4o", 25, 128_000, &[Medium, High]),
            model(
                "claude-sonnet",
                "anthropic",
                "claude-sonnet-4-5",
                30,
                200_000,
                &[Medium, High],
            ),
            model(
                "claude-opus",
                "anthropic",
                "claude-opus-4-1",
                150,
                200_000,
                &[High],
            ),
        ];
        models.push(ModelConfig {
            id: "openai-embed-small".into(),
            provider: "openai".into(),
            model: "text-embedding-3-small".into(),
            input_per_1k: Micro(20_000),
            output_per_1k: Micro(0),
            context: 8_191,
            vision: false,
            tasks: vec!["embed".into()],
            tiers: vec![Low, Medium, High],
        });
        models.push(ModelConfig {
            id: "gemini-embed".into(),
            provider: "gemini".into(),
            model: "text-embedding-004".into(),
            input_per_1k: Micro(10_000),
            output_per_1k: Micro(0),
            context: 2_048,
            vision: false,
            tasks: vec!["embed".into()],
            tiers: vec![Low, Medium, High],
        });
        Self {
            default_model: "gpt-4o-mini".into(),
            default_max_tokens: 1_024,
            max_tokens_limit: 32_768,
            max_attempts: 3,
            providers: vec![
                provider("openai", ProviderKind::OpenAi, "OPENAI_API_KEY"),
                provider("anthropic", ProviderKind::Anthropic, "ANTHROPIC_API_KEY"),
                provider("gemini", ProviderKind::Gemini, "GEMINI_API_KEY"),
                provider("xai", ProviderKind::Xai, "XAI_API_KEY"),
            ],
            models,
        }
    }
}
