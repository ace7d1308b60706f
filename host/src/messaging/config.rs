//! `[messaging]`: delivery of the outbox, the platform's default providers,
//! and the per-tenant limits of each channel.

use serde::{Deserialize, Serialize};

/// How the outbox delivers. With no provider configured for a channel
/// (here or by the tenant), messages go to the dev inbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingConfig {
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt up to `max_retry_delay_ms`
    /// (with ±20 % jitter).
    pub retry_base_ms: u64,
    pub max_retry_delay_ms: u64,
    /// How long a claimed message is reserved for its worker (longer than
    /// any provider call): past it, a crashed worker's message is due again.
    pub lease_ms: u64,
    /// Messages claimed per query.
    pub batch_size: u32,
    /// Provider calls in flight at once, per process.
    pub concurrency: u32,
    /// How often workers look for due messages when not woken.
    pub poll_ms: u64,
    /// Largest rendered message (all parts), in bytes.
    pub max_message_bytes: usize,
    /// The public base URL of this server (`https://weft.example.com`),
    /// from which signed provider webhooks' URLs are rebuilt; when empty,
    /// `http://` and the request's Host header.
    pub public_url: String,
    /// Deliver to the dev inbox (`GET /v1/dev/outbox`) on a channel with no
    /// provider, the tenant's or the platform's; when off, `send` on such
    /// a channel answers `channel-not-configured`.
    pub dev_inbox: bool,
    /// Platform default providers, used by tenants that brought none.
    pub email: Option<ProviderSettings>,
    pub sms: Option<ProviderSettings>,
    pub push: Option<ProviderSettings>,
    /// Per-tenant limits, per channel.
    pub limits: ChannelLimits,
    /// Messages that are done (sent, delivered, bounced, failed or dead)
    /// are kept this long with their attempts, then pruned; a message's
    /// idempotency key is remembered as long as the message is kept.
    pub retention_days: u32,
    /// Dev inbox entries are kept this long.
    pub dev_inbox_days: u32,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            retry_base_ms: 1_000,
            max_retry_delay_ms: 300_000,
            lease_ms: 60_000,
            batch_size: 64,
            concurrency: 16,
            poll_ms: 500,
            max_message_bytes: 256 * 1024,
            public_url: String::new(),
            dev_inbox: true,
            email: None,
            sms: None,
            push: None,
            limits: ChannelLimits::default(),
            retention_days: 30,
            dev_inbox_days: 7,
        }
    }
}

/// A channel's limits for one tenant.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Messages queued per minute (the rate limit).
    pub per_minute: u64,
    /// Messages queued per UTC day (the quota).
    pub per_day: u64,
}

/// [`Limit`]s by channel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelLimits {
    pub email: Limit,
    pub sms: Limit,
    pub push: Limit,
    pub in_app: Limit,
}

impl ChannelLimits {
    /// The limit of `channel`.
    pub fn of(&self, channel: super::Channel) -> Limit {
        match channel {
            super::Channel::Email => self.email,
            super::Channel::Sms => self.sms,
            super::Channel::Push => self.push,
            super::Channel::InApp => self.in_app,
        }
    }
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self {
            email: Limit {
                per_minute: 600,
                per_day: 10_000,
            },
            sms: Limit {
                per_minute: 60,
                per_day: 1_000,
            },
            push: Limit {
                per_minute: 1_200,
                per_day: 50_000,
            },
            in_app: Limit {
                per_minute: 1_200,
                per_day: 100_000,
            },
        }
    }
}

/// How the TLS of an SMTP relay is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    /// Plain text (a local relay): credentials travel in the clear.
    None,
    /// STARTTLS, required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// One provider and its credentials: the platform's defaults in
/// `weft.toml`, or a tenant's own (stored encrypted, the same shape).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderSettings {
    /// Email through an SMTP relay.
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTlsMode,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        /// The sender (`Shop <noreply@shop.example>`).
        from: String,
    },
    /// Email through SendGrid's v3 API.
    Sendgrid {
        api_key: String,
        from: String,
        #[serde(default)]
        base_url: Option<String>,
        /// The Event Webhook's verification key (base64), to accept its
        /// status callbacks.
        #[serde(default)]
        webhook_public_key: Option<String>,
    },
    /// Email through Mailgun's API.
    Mailgun {
        api_key: String,
        domain: String,
        from: String,
        #[serde(default)]
        base_url: Option<String>,
        /// The webhook signing key, to accept its status callbacks.
        #[serde(default)]
        webhook_signing_key: Option<String>,
    },
    /// SMS through Twilio's Messages API (its auth token also checks the
    /// status callbacks).
    Twilio {
        account_sid: String,
        auth_token: String,
        /// The sending number (E.164).
        from: String,
        #[serde(default)]
        base_url: Option<String>,
    },
    /// Push through Firebase Cloud Messaging HTTP v1.
    Fcm {
        /// The service account key file's JSON.
        service_account_json: String,
        #[serde(default)]
        base_url: Option<String>,
    },
}

impl std::fmt::Debug for ProviderSettings {
    // Credentials never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderSettings({})", self.name())
    }
}

impl ProviderSettings {
    /// The provider's name (`smtp`, `sendgrid`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Smtp { .. } => "smtp",
            Self::Sendgrid { .. } => "sendgrid",
            Self::Mailgun { .. } => "mailgun",
            Self::Twilio { .. } => "twilio",
            Self::Fcm { .. } => "fcm",
        }
    }

    /// The channel the provider serves.
    pub fn channel(&self) -> super::Channel {
        match self {
            Self::Smtp { .. } | Self::Sendgrid { .. } | Self::Mailgun { .. } => {
                super::Channel::Email
            }
            Self::Twilio { .. } => super::Channel::Sms,
            Self::Fcm { .. } => super::Channel::Push,
        }
    }

    /// What an admin may see: the provider and its non-secret fields.
    pub fn redacted(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Smtp {
                host,
                port,
                tls,
                username,
                from,
                ..
            } => {
                json!({"provider": "smtp", "host": host, "port": port, "tls": tls, "username": username, "from": from})
            }
            Self::Sendgrid {
                from,
                base_url,
                webhook_public_key,
                ..
            } => {
                json!({"provider": "sendgrid", "from": from, "base_url": base_url, "webhook_verification": webhook_public_key.is_some()})
            }
            Self::Mailgun {
                domain,
                from,
                base_url,
                webhook_signing_key,
                ..
            } => {
                json!({"provider": "mailgun", "domain": domain, "from": from, "base_url": base_url, "webhook_verification": webhook_signing_key.is_some()})
            }
            Self::Twilio {
                account_sid,
                from,
                base_url,
                ..
            } => {
                json!({"provider": "twilio", "account_sid": account_sid, "from": from, "base_url": base_url})
            }
            Self::Fcm { base_url, .. } => json!({"provider": "fcm", "base_url": base_url}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_providers_and_limits_parse_from_toml() {
        let config: MessagingConfig = toml::from_str(
            r#"
            dev_inbox = false
            [email]
            provider = "smtp"
            host = "smtp.example.com"
            port = 587
            tls = "starttls"
            username = "weft"
            password = "secret-password"
            from = "Weft <noreply@example.com>"
            [limits.sms]
            per_minute = 5
            per_day = 50
            "#,
        )
        .expect("parses");
        assert!(!config.dev_inbox);
        let email = config.email.expect("email");
        assert_eq!(email.name(), "smtp");
        assert_eq!(email.channel(), crate::messaging::Channel::Email);
        assert!(!email.redacted().to_string().contains("secret-password"));
        assert!(!format!("{email:?}").contains("secret-password"));
        assert_eq!(config.limits.sms.per_day, 50);
        assert_eq!(config.limits.email.per_day, 10_000, "defaults kept");
    }

    #[test]
    fn unknown_providers_and_fields_are_refused() {
        assert!(toml::from_str::<MessagingConfig>("[email]\nprovider = \"pigeon\"").is_err());
        assert!(
            toml::from_str::<MessagingConfig>(
                "[sms]\nprovider = \"twilio\"\naccount_sid = \"a\"\nauth_token = \"b\"\nfrom = \"+1\"\nextra = 1"
            )
            .is_err()
        );
    }
}
