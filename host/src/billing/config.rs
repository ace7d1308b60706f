//! Operator configuration of billing: the margin, the credit packages first
//! offered (the superadmin edits them afterwards), the plans, Stripe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[billing]` in `weft.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Added to every LLM charge, in basis points (1,500 = 15 %).
    pub margin_bp: u32,
    /// Currency of packages, plans and invoices (ISO code, lower case).
    pub currency: String,
    /// The plan of a tenant that never chose one.
    pub default_plan: String,
    /// Credit packages seeded into the database on first start.
    pub packages: Vec<PackageConfig>,
    /// Plans, by id.
    pub plans: Vec<PlanConfig>,
    /// Prices of the metered lines of the monthly invoice.
    pub prices: UsagePrices,
    /// Holds older than this without a settlement were left by a crash and
    /// are released by the sweeper.
    pub stale_hold_secs: u64,
    pub stripe: StripeConfig,
}

/// A credit package as first seeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    pub id: String,
    pub name: String,
    /// Whole credits granted.
    pub credits: i64,
    /// Price in minor units of `BillingConfig::currency`.
    pub price_minor: i64,
}

/// A plan: its fee, daily limits and which models each role may use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub id: String,
    pub name: String,
    /// Platform fee per month, minor units.
    #[serde(default)]
    pub monthly_fee_minor: i64,
    /// Projects a tenant may have; `None` is unlimited.
    #[serde(default)]
    pub projects: Option<u64>,
    /// LLM sessions per UTC day; `None` is unlimited.
    #[serde(default)]
    pub sessions_per_day: Option<u64>,
    /// LLM tokens (input + output) per UTC day; `None` is unlimited.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Outbox messages per UTC day by channel (`email`, `sms`, `push`,
    /// `in_app`), over `[messaging.limits]`'s daily quota; a channel not
    /// listed keeps that quota.
    #[serde(default)]
    pub messages_per_day: BTreeMap<String, u64>,
    /// Default model (catalog id) per role; the key `default` for any role.
    #[serde(default)]
    pub default_models: BTreeMap<String, String>,
    /// Models each role may use; the key `default` for any role not listed.
    /// No entry at all: every model.
    #[serde(default)]
    pub allowed_models: BTreeMap<String, Vec<String>>,
    /// Stripe price of the subscription, and its lookup key (webhooks name
    /// the plan by either).
    #[serde(default)]
    pub stripe_price: Option<String>,
    #[serde(default)]
    pub stripe_lookup_key: Option<String>,
}

/// Prices of the invoice's metered lines, in minor units.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsagePrices {
    /// Per 1,000 credits of LLM usage (credits are prepaid: this prices the
    /// invoice line only when `bill_llm_credits` is set).
    pub per_1k_credits_minor: i64,
    /// Invoice LLM usage in money (`true`) or show it as settled from
    /// prepaid credits (`false`, amount 0).
    pub bill_llm_credits: bool,
    /// Per billion units of plugin fuel.
    pub per_billion_fuel_minor: i64,
    /// Per GB-month stored (GB = 10^9 bytes).
    pub per_gb_month_minor: i64,
    /// Per GB of plugin request and response bodies.
    pub per_gb_transfer_minor: i64,
    /// Per 1,000 messages the outbox delivered, by channel.
    pub per_1k_messages_minor: MessagePrices,
}

/// Prices per 1,000 delivered messages of each outbox channel, in minor
/// units (the defaults are near what the providers charge: an SMS costs
/// about a hundred emails).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagePrices {
    pub email: i64,
    pub sms: i64,
    pub push: i64,
    pub in_app: i64,
}

impl Default for MessagePrices {
    fn default() -> Self {
        Self {
            email: 100,
            sms: 800,
            push: 10,
            in_app: 0,
        }
    }
}

impl MessagePrices {
    /// The price of `channel` (`email`, `sms`, `push`, `in_app`); `None`
    /// for a channel this version does not know.
    pub fn of(&self, channel: &str) -> Option<i64> {
        match channel {
            "email" => Some(self.email),
            "sms" => Some(self.sms),
            "push" => Some(self.push),
            "in_app" => Some(self.in_app),
            _ => None,
        }
    }
}

/// Stripe: keys, where its API is, and what checkout returns to.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// Secret API key (`WEFT_STRIPE_SECRET_KEY`); empty: checkout is off.
    pub secret_key: String,
    /// Webhook signing secret (`WEFT_STRIPE_WEBHOOK_SECRET`).
    pub webhook_secret: String,
    /// API root (a fake in tests).
    pub base_url: String,
    /// Accepted age of a webhook signature.
    pub tolerance_secs: i64,
    pub success_url: String,
    pub cancel_url: String,
    /// Billing meter the usage is reported to.
    pub meter_event_name: String,
}

impl Default for BillingConfig {
    fn default() -> Self {
        let package = |id: &str, name: &str, credits, price_minor| PackageConfig {
            id: id.into(),
            name: name.into(),
            credits,
            price_minor,
        };
        Self {
            margin_bp: 1_500,
            currency: "usd".into(),
            default_plan: "bootstrapper".into(),
            packages: vec![
                package("starter", "Starter", 1_000, 1_000),
                package("basic", "Basic", 5_500, 4_500),
                package("pro", "Pro", 13_500, 10_000),
                package("business", "Business", 35_000, 22_500),
                package("enterprise", "Enterprise", 120_000, 70_000),
            ],
            plans: default_plans(),
            prices: UsagePrices::default(),
            stale_hold_secs: 900,
            stripe: StripeConfig::default(),
        }
    }
}

impl Default for UsagePrices {
    fn default() -> Self {
        Self {
            per_1k_credits_minor: 1_000,
            bill_llm_credits: false,
            per_billion_fuel_minor: 10,
            per_gb_month_minor: 25,
            per_gb_transfer_minor: 9,
            per_1k_messages_minor: MessagePrices::default(),
        }
    }
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            secret_key: String::new(),
            webhook_secret: String::new(),
            base_url: "https://api.stripe.com".into(),
            tolerance_secs: 300,
            success_url: "http://127.0.0.1:8080/portal/billing?checkout=success".into(),
            cancel_url: "http://127.0.0.1:8080/portal/billing?checkout=cancel".into(),
            meter_event_name: "weft_usage".into(),
        }
    }
}

/// `bootstrapper`, `partner` and `cto_scale`.
fn default_plans() -> Vec<PlanConfig> {
    let models = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let allowed = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|m| (*m).to_owned()).collect()))
            .collect()
    };
    vec![
        PlanConfig {
            id: "bootstrapper".into(),
            name: "Bootstrapper".into(),
            monthly_fee_minor: 0,
            projects: Some(1),
            sessions_per_day: Some(10),
            tokens_per_day: Some(500_000),
            messages_per_day: BTreeMap::new(),
            default_models: models(&[
                ("default", "gemini-flash"),
                ("architect", "claude-haiku"),
                ("coder", "gpt-4o-mini"),
            ]),
            allowed_models: allowed(&[(
                "default",
                &[
                    "gemini-flash",
                    "gpt-4o-mini",
                    "claude-haiku",
                    "gemini-embed",
                    "openai-embed-small",
                ],
            )]),
            stripe_price: None,
            stripe_lookup_key: Some("bootstrapper".into()),
        },
        PlanConfig {
            id: "partner".into(),
            name: "Partner".into(),
            monthly_fee_minor: 4_900,
            projects: Some(3),
            sessions_per_day: Some(50),
            tokens_per_day: Some(2_000_000),
            messages_per_day: BTreeMap::new(),
            default_models: models(&[
                ("default", "gpt-4o-mini"),
                ("architect", "claude-sonnet"),
                ("coder", "gpt-4o"),
            ]),
            allowed_models: allowed(&[(
                "default",
                &[
                    "gemini-flash",
                    "gpt-4o-mini",
                    "claude-haiku",
                    "gpt-4o",
                    "claude-sonnet",
                    "gemini-embed",
                    "openai-embed-small",
                ],
            )]),
            stripe_price: None,
            stripe_lookup_key: Some("partner".into()),
        },
        PlanConfig {
            id: "cto_scale".into(),
            name: "CTO Scale".into(),
            monthly_fee_minor: 19_900,
            projects: None,
            sessions_per_day: None,
            tokens_per_day: Some(10_000_000),
            messages_per_day: BTreeMap::new(),
            default_models: models(&[
                ("default", "gpt-4o"),
                ("architect", "claude-opus"),
                ("coder", "claude-sonnet"),
            ]),
            allowed_models: BTreeMap::new(),
            stripe_price: None,
            stripe_lookup_key: Some("cto_scale".into()),
        },
    ]
}
