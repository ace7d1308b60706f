//! Who delivers a tenant's messages on a channel: the tenant's own provider
//! (its settings stored encrypted as the tenant secret
//! `messaging:<channel>`), else the platform's default from `[messaging]`,
//! else the dev inbox (when `dev_inbox` is on). Senders are built once per
//! distinct settings and kept (an SMTP sender keeps its connections).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weft_msg_wire::{
    EmailSender, FcmConfig, FcmSender, MailgunConfig, MailgunSender, PushSender, SendGridConfig,
    SendGridSender, ServiceAccount, SmsSender, SmtpConfig, SmtpSender, SmtpTls, TwilioConfig,
    TwilioSender,
};

use super::Channel;
use super::config::{MessagingConfig, ProviderSettings, SmtpTlsMode};
use crate::ids::TenantId;
use crate::secrets::{self, Secrets};

/// The tenant secret holding a channel's provider settings.
pub const SECRET_PREFIX: &str = "messaging:";

/// How a message on one channel is delivered.
#[derive(Clone)]
pub enum Route {
    /// Stored for its user (in-app notifications).
    InApp,
    /// Written to the dev inbox: no provider is configured.
    Dev,
    Email {
        provider: &'static str,
        from: String,
        sender: Arc<dyn EmailSender>,
    },
    Sms {
        provider: &'static str,
        from: String,
        sender: Arc<dyn SmsSender>,
    },
    Push {
        provider: &'static str,
        sender: Arc<dyn PushSender>,
    },
    /// Nothing can deliver (dev inbox off, no provider): a permanent failure.
    Unconfigured,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.provider())
    }
}

impl Route {
    /// The provider's name as stored on the message.
    pub fn provider(&self) -> &'static str {
        match self {
            Route::InApp => "in_app",
            Route::Dev => "dev",
            Route::Email { provider, .. }
            | Route::Sms { provider, .. }
            | Route::Push { provider, .. } => provider,
            Route::Unconfigured => "none",
        }
    }
}

#[derive(Clone)]
enum Built {
    Email(Arc<dyn EmailSender>),
    Sms(Arc<dyn SmsSender>),
    Push(Arc<dyn PushSender>),
}

/// Provider settings and the senders built from them.
pub struct Providers {
    secrets: Arc<Secrets>,
    config: MessagingConfig,
    /// Settings (as JSON) → sender.
    built: Mutex<HashMap<String, Built>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").finish_non_exhaustive()
    }
}

impl Providers {
    pub fn new(secrets: Arc<Secrets>, config: MessagingConfig) -> Self {
        Self {
            secrets,
            config,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's own settings for `channel`, if it stored some.
    pub async fn own(
        &self,
        tenant: &TenantId,
        channel: Channel,
    ) -> secrets::Result<Option<ProviderSettings>> {
        let values = self.secrets.values(tenant, SECRET_PREFIX).await?;
        let name = format!("{SECRET_PREFIX}{}", channel.as_str());
        Ok(values
            .get(&name)
            .and_then(|json| match serde_json::from_str(json) {
                Ok(settings) => Some(settings),
                Err(err) => {
                    tracing::warn!(%err, tenant = tenant.as_str(), "stored messaging settings do not parse");
                    None
                }
            }))
    }

    /// Stores the tenant's own settings (encrypted) for their channel.
    pub async fn set_own(
        &self,
        tenant: &TenantId,
        settings: &ProviderSettings,
    ) -> secrets::Result<()> {
        let name = format!("{SECRET_PREFIX}{}", settings.channel().as_str());
        let json = serde_json::to_string(settings).map_err(|_| secrets::Error::Crypto)?;
        self.secrets.put(tenant, &name, &json).await.map(|_| ())
    }

    /// Removes the tenant's own settings for `channel`; false if none.
    pub async fn delete_own(&self, tenant: &TenantId, channel: Channel) -> secrets::Result<bool> {
        let name = format!("{SECRET_PREFIX}{}", channel.as_str());
        self.secrets.delete(tenant, &name).await
    }

    /// The settings that apply: the tenant's own, else the platform's.
    pub async fn settings(
        &self,
        tenant: &TenantId,
        channel: Channel,
    ) -> secrets::Result<Option<ProviderSettings>> {
        if let Some(own) = self.own(tenant, channel).await? {
            return Ok(Some(own));
        }
        Ok(self.platform(channel).cloned())
    }

    /// The platform's default for `channel`.
    pub fn platform(&self, channel: Channel) -> Option<&ProviderSettings> {
        match channel {
            Channel::Email => self.config.email.as_ref(),
            Channel::Sms => self.config.sms.as_ref(),
            Channel::Push => self.config.push.as_ref(),
            Channel::InApp => None,
        }
    }

    /// Whether a provider (not the dev inbox) serves `channel` for `tenant`.
    pub async fn configured(&self, tenant: &TenantId, channel: Channel) -> bool {
        channel == Channel::InApp || matches!(self.settings(tenant, channel).await, Ok(Some(_)))
    }

    /// How `tenant`'s messages on `channel` are delivered now; a Twilio
    /// sender asks for status callbacks at `status_callback`. An error is a
    /// fault reading the tenant's settings (transient); settings that do
    /// not make a sender are a permanent failure (`Err(Ok(reason))`).
    pub async fn route(
        &self,
        tenant: &TenantId,
        channel: Channel,
        status_callback: Option<&str>,
    ) -> Result<Route, Result<String, secrets::Error>> {
        if channel == Channel::InApp {
            return Ok(Route::InApp);
        }
        let Some(settings) = self.settings(tenant, channel).await.map_err(Err)? else {
            return Ok(if self.config.dev_inbox {
                Route::Dev
            } else {
                Route::Unconfigured
            });
        };
        let built = self.built(&settings, status_callback).map_err(Ok)?;
        let provider = settings.name();
        Ok(match (built, &settings) {
            (Built::Email(sender), ProviderSettings::Smtp { from, .. })
            | (Built::Email(sender), ProviderSettings::Sendgrid { from, .. })
            | (Built::Email(sender), ProviderSettings::Mailgun { from, .. }) => Route::Email {
                provider,
                from: from.clone(),
                sender,
            },
            (Built::Sms(sender), ProviderSettings::Twilio { from, .. }) => Route::Sms {
                provider,
                from: from.clone(),
                sender,
            },
            (Built::Push(sender), _) => Route::Push { provider, sender },
            _ => return Err(Ok("provider settings do not match their channel".into())),
        })
    }

    fn built(
        &self,
        settings: &ProviderSettings,
        status_callback: Option<&str>,
    ) -> Result<Built, String> {
        let key = format!(
            "{}\n{}",
            serde_json::to_string(settings).unwrap_or_default(),
            status_callback.unwrap_or_default()
        );
        if let Some(b) = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(b.clone());
        }
        let built = build(settings, status_callback).map_err(|e| e.to_string())?;
        let mut cache = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, built.clone());
        Ok(built)
    }
}

fn build(
    settings: &ProviderSettings,
    status_callback: Option<&str>,
) -> weft_msg_wire::Result<Built> {
    Ok(match settings.clone() {
        ProviderSettings::Smtp {
            host,
            port,
            tls,
            username,
            password,
            ..
        } => {
            let tls = match tls {
                SmtpTlsMode::None => SmtpTls::None,
                SmtpTlsMode::Starttls => SmtpTls::StartTls,
                SmtpTlsMode::Tls => SmtpTls::Implicit,
            };
            let mut config = SmtpConfig::new(host, port, tls);
            if let Some(user) = username {
                config = config.with_credentials(user, password.unwrap_or_default());
            }
            Built::Email(Arc::new(SmtpSender::new(&config)?))
        }
        ProviderSettings::Sendgrid {
            api_key, base_url, ..
        } => {
            let mut config = SendGridConfig::new(api_key);
            if let Some(url) = base_url {
                config = config.with_base_url(url);
            }
            Built::Email(Arc::new(SendGridSender::new(config)?))
        }
        ProviderSettings::Mailgun {
            api_key,
            domain,
            base_url,
            ..
        } => {
            let mut config = MailgunConfig::new(domain, api_key);
            if let Some(url) = base_url {
                config = config.with_base_url(url);
            }
            Built::Email(Arc::new(MailgunSender::new(config)?))
        }
        ProviderSettings::Twilio {
            account_sid,
            auth_token,
            base_url,
            ..
        } => {
            let mut config = TwilioConfig::new(account_sid, auth_token);
            if let Some(url) = base_url {
                config = config.with_base_url(url);
            }
            if let Some(url) = status_callback {
                config = config.with_status_callback(url);
            }
            Built::Sms(Arc::new(TwilioSender::new(config)?))
        }
        ProviderSettings::Fcm {
            service_account_json,
            base_url,
        } => {
            let account = ServiceAccount::from_json(&service_account_json)?;
            let mut config = FcmConfig::new(account);
            if let Some(url) = base_url {
                config = config.with_base_url(url);
            }
            Built::Push(Arc::new(FcmSender::new(config)?))
        }
    })
}

/// Checks settings an admin submits: they build a sender, and the sender
/// address is one.
pub fn check(settings: &ProviderSettings) -> Result<(), String> {
    match settings {
        ProviderSettings::Smtp { from, .. }
        | ProviderSettings::Sendgrid { from, .. }
        | ProviderSettings::Mailgun { from, .. } => {
            let address = from
                .rsplit_once('<')
                .map(|(_, a)| a.trim_end_matches('>'))
                .unwrap_or(from);
            super::check_email(address.trim())?;
        }
        ProviderSettings::Twilio { from, .. } => super::check_e164(from)?,
        ProviderSettings::Fcm { .. } => {}
    }
    build(settings, None).map(|_| ()).map_err(|e| e.to_string())
}
