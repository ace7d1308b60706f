//! Messaging provider wire formats for Weft.
//!
//! Senders speak each provider's real protocol and take the
//! provider-neutral [`Email`], [`Sms`] and [`Push`]: [`SmtpSender`] (any
//! relay, via `lettre`), [`SendGridSender`], [`MailgunSender`],
//! [`TwilioSender`] and [`FcmSender`] (FCM HTTP v1 with a service-account
//! token). Every failure is a [`SendError`] that is either
//! [`Transient`](SendError::Transient) (retry later, maybe after
//! [`SendError::retry_after`]) or [`Permanent`](SendError::Permanent) (give
//! the message up), which is all an outbox needs to decide. The
//! [`EmailSender`], [`SmsSender`] and [`PushSender`] traits are object
//! safe, so each tenant's choice of provider can sit behind one
//! `Arc<dyn …>`.
//!
//! Status webhooks are verified exactly as each provider signs them
//! ([`TwilioWebhook`], [`SendGridWebhook`], [`MailgunWebhook`]) and become
//! [`StatusEvent`]s whose `provider_id` matches [`Sent::provider_id`].
//!
//! [`fake`] has an in-process server per provider speaking the same
//! protocols, for tests and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_msg_wire::SendError> {
//! use std::time::Duration;
//! use weft_msg_wire::{Email, SendGridConfig, SendGridSender, SendError};
//!
//! let sender = SendGridSender::new(
//!     SendGridConfig::new("SG.xxxx").with_timeout(Duration::from_secs(10)),
//! )?;
//! let email = Email {
//!     from: "Weft <noreply@example.com>".into(),
//!     to: "ada@example.org".into(),
//!     reply_to: None,
//!     subject: "Your receipt".into(),
//!     html: Some("<p>Thanks!</p>".into()),
//!     text: Some("Thanks!".into()),
//!     headers: vec![
//!         ("List-Unsubscribe".into(), "<https://example.com/u/abc>".into()),
//!         ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
//!     ],
//! };
//! match sender.send(&email).await {
//!     Ok(sent) => println!("accepted as {}", sent.provider_id),
//!     Err(e) if e.is_transient() => println!("retry in {:?}: {e}", e.retry_after()),
//!     Err(e) => println!("giving up: {e}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layout: `types.rs` holds the neutral messages and sender traits,
//! `error.rs` the one send error; `http.rs` is what the HTTP senders share
//! (client, status classification, `Retry-After`); `smtp.rs` (with
//! `smtp/pool.rs`, the connections kept per relay), `sendgrid.rs`,
//! `mailgun.rs`, `twilio.rs` and `fcm.rs` (with `fcm/service_account.rs`
//! for the OAuth JWT and token cache) each build one provider's request
//! and read its answers; `webhook.rs` (with
//! `webhook/`) verifies and parses status callbacks; `fake.rs` (with
//! `fake/`) holds the fakes.

#![warn(missing_docs)]

mod error;
pub mod fake;
mod fcm;
mod http;
mod mailgun;
mod sendgrid;
mod smtp;
mod twilio;
mod types;
mod webhook;

pub use error::{Failure, Provider, Result, SendError};
pub use fake::{
    Accepted, FakeFcm, FakeMailgun, FakeSendGrid, FakeSmtp, FakeTwilio, SignedWebhook, SmtpMessage,
};
pub use fcm::{FCM_SCOPE, FcmConfig, FcmSender, ServiceAccount};
pub use mailgun::{MailgunConfig, MailgunSender};
pub use sendgrid::{SendGridConfig, SendGridSender};
pub use smtp::{SmtpConfig, SmtpCredentials, SmtpSender, SmtpTls};
pub use twilio::{TwilioConfig, TwilioSender};
pub use types::{Email, EmailSender, Push, PushSender, SendFuture, Sent, Sms, SmsSender};
pub use webhook::{
    DEFAULT_TOLERANCE, DeliveryStatus, MailgunWebhook, SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER, SendGridWebhook, StatusEvent, TWILIO_SIGNATURE_HEADER,
    TwilioWebhook, WebhookError,
};
