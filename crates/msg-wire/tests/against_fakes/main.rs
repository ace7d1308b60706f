//! Every sender against its fake, and every webhook verifier against the
//! fakes' signed posts.

mod fcm;
mod mailgun;
mod sendgrid;
mod smtp;
mod twilio;
mod webhooks;

use weft_msg_wire::{Email, SendError};

/// The host installs ring once at start; tests do the same.
fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An email with both bodies, a reply-to and one-click unsubscribe headers.
fn email(to: &str) -> Email {
    Email {
        from: "Weft Mail <noreply@weft.test>".into(),
        to: to.into(),
        reply_to: Some("support@weft.test".into()),
        subject: "Your receipt — Grüße".into(),
        html: Some("<p>Thanks for your order.</p>".into()),
        text: Some("Thanks for your order.".into()),
        headers: vec![
            (
                "List-Unsubscribe".into(),
                "<https://weft.test/unsubscribe/abc123>".into(),
            ),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ],
    }
}

/// The error of a send that must fail.
#[track_caller]
fn failed<T: std::fmt::Debug>(result: Result<T, SendError>) -> SendError {
    match result {
        Ok(value) => panic!("expected a failure, got {value:?}"),
        Err(e) => e,
    }
}
