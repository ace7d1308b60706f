//! Outbox delivery: claims due messages with a lease (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so replicas share the queue), sends each through
//! the route its tenant and channel have (`messaging::providers`), and
//! records the attempt: sent, retried with exponential backoff on a
//! transient failure, or dead-lettered after the last attempt or at once on
//! a permanent one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use weft_msg_wire::{Email, Push, Sms};

use crate::app::App;
use crate::config::EventsConfig;
use crate::ids::now_ms;
use crate::messaging::Content;
use crate::messaging::providers::Route;
use crate::messaging::store::{self, Claimed, Outcome};

/// Starts the delivery loop and the hourly pruning (old counters, done
/// messages past their retention, the dev inbox).
pub fn spawn(app: &Arc<App>) {
    let app = app.clone();
    tokio::spawn(async move {
        let config = app.messaging.config().clone();
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1) as usize));
        let poll = Duration::from_millis(config.poll_ms.max(10));
        let mut pruned_at = 0;
        loop {
            let claimed =
                match store::claim(&app.db, config.lease_ms, config.batch_size.max(1)).await {
                    Ok(c) => c,
                    Err(err) => {
                        tracing::warn!(%err, "claiming outbox messages failed");
                        Vec::new()
                    }
                };
            let full = claimed.len() >= config.batch_size.max(1) as usize;
            let mut running = Vec::with_capacity(claimed.len());
            for msg in claimed {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let app = app.clone();
                running.push(tokio::spawn(async move {
                    deliver(&app, msg).await;
                    drop(slot);
                }));
            }
            for task in running {
                let _ = task.await;
            }
            if now_ms() - pruned_at > 3_600_000 {
                pruned_at = now_ms();
                let day = 86_400_000;
                let retention = i64::from(config.retention_days.max(1)) * day;
                let dev_inbox = i64::from(config.dev_inbox_days.max(1)) * day;
                match store::prune(&app.db, retention, dev_inbox).await {
                    Ok(pruned) => tracing::debug!(?pruned, "outbox pruned"),
                    Err(err) => tracing::warn!(%err, "pruning the outbox failed"),
                }
            }
            if !full {
                tokio::select! {
                    () = app.messaging.woken() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
    });
}

/// Delivers one claimed message and records how it went.
async fn deliver(app: &App, msg: Claimed) {
    let config = app.messaging.config();
    let (provider, outcome) = match &msg.content {
        None => (
            "none",
            Outcome::Dead {
                error: "the stored message does not parse".into(),
                permanent: true,
            },
        ),
        Some(content) => match app
            .messaging
            .providers()
            .route(
                &msg.tenant,
                msg.channel,
                status_callback(app, &msg).await.as_deref(),
            )
            .await
        {
            Ok(route) => {
                let provider = route.provider();
                (provider, attempt(config, &route, &msg, content).await)
            }
            Err(Ok(reason)) => (
                "none",
                Outcome::Dead {
                    error: reason,
                    permanent: true,
                },
            ),
            Err(Err(err)) => {
                tracing::warn!(%err, "reading a tenant's messaging settings failed");
                (
                    "none",
                    retry_or_dead(config, &msg, "provider settings unreadable".into(), None),
                )
            }
        },
    };
    if let Err(err) = store::record(&app.db, &msg, provider, &outcome).await {
        // The lease runs out and the message is claimed again.
        tracing::warn!(%err, message = %msg.id, "recording an outbox attempt failed");
    }
}

/// Where Twilio reports an SMS's status: this server's webhook for the
/// tenant, when the operator configured the public URL.
async fn status_callback(app: &App, msg: &Claimed) -> Option<String> {
    let base = app.messaging.config().public_url.trim_end_matches('/');
    if base.is_empty() || msg.channel != crate::messaging::Channel::Sms {
        return None;
    }
    let tenant = app.tenants.by_id(&msg.tenant).await.ok()?;
    Some(format!(
        "{base}/v1/webhooks/messaging/twilio/{}",
        tenant.slug
    ))
}

/// One attempt through `route`.
async fn attempt(
    config: &crate::messaging::MessagingConfig,
    route: &Route,
    msg: &Claimed,
    content: &Content,
) -> Outcome {
    let sent = |provider_id: String, delivered: bool| Outcome::Sent {
        provider_id,
        delivered,
    };
    let result = match (route, content) {
        (Route::InApp, _) | (Route::Dev, _) => return sent(msg.id.clone(), true),
        (Route::Unconfigured, _) => {
            return Outcome::Dead {
                error: format!("no {} provider is configured", msg.channel.as_str()),
                permanent: true,
            };
        }
        (
            Route::Email { from, sender, .. },
            Content::Email {
                to,
                subject,
                html,
                text,
                headers,
            },
        ) => {
            let email = Email {
                from: from.clone(),
                to: to.clone(),
                reply_to: None,
                subject: subject.clone(),
                html: html.clone(),
                text: text.clone(),
                headers: headers.clone(),
            };
            sender.send_email(&email).await
        }
        (Route::Sms { from, sender, .. }, Content::Sms { to, body }) => {
            let sms = Sms {
                from: from.clone(),
                to: to.clone(),
                body: body.clone(),
            };
            sender.send_sms(&sms).await
        }
        (
            Route::Push { sender, .. },
            Content::Push {
                token,
                title,
                body,
                data,
            },
        ) => {
            let push = Push {
                token: token.clone(),
                title: title.clone(),
                body: body.clone(),
                data: data.clone(),
            };
            sender.send_push(&push).await
        }
        _ => {
            return Outcome::Dead {
                error: "the provider does not serve this channel".into(),
                permanent: true,
            };
        }
    };
    match result {
        Ok(s) => sent(s.provider_id, false),
        Err(e) if e.is_transient() => {
            let after = e.retry_after();
            retry_or_dead(config, msg, e.to_string(), after)
        }
        Err(e) => Outcome::Dead {
            error: e.to_string(),
            permanent: true,
        },
    }
}

/// A transient failure: retried after the backoff (or the provider's
/// `Retry-After`, if longer), or dead once the attempts are used up.
fn retry_or_dead(
    config: &crate::messaging::MessagingConfig,
    msg: &Claimed,
    error: String,
    after: Option<Duration>,
) -> Outcome {
    if msg.attempts >= config.max_attempts.max(1) {
        return Outcome::Dead {
            error,
            permanent: false,
        };
    }
    let backoff = crate::events::backoff_ms(
        &EventsConfig {
            retry_base_ms: config.retry_base_ms,
            max_retry_delay_ms: config.max_retry_delay_ms,
            ..EventsConfig::default()
        },
        msg.attempts,
    );
    let wait = after
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .max(backoff)
        .min(config.max_retry_delay_ms.max(backoff));
    Outcome::Retry {
        error,
        next_attempt_at: now_ms() + i64::try_from(wait).unwrap_or(i64::MAX / 2),
    }
}
