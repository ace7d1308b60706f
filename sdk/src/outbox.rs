//! Messages to people (`weft:platform/outbox`): email, SMS, push and in-app
//! notifications, rendered by the plugin and delivered by the host.
//!
//! [`send`] is part of the call's unit of work: the message is queued only
//! if the call commits. The idempotency key makes a retried call safe: the
//! same key answers the first message's id and queues nothing more.
//!
//! ```no_run
//! use weft_sdk::outbox::{self, Email};
//!
//! let id = outbox::send(
//!     Email::to("ada@example.org", "Your receipt").text("Thanks!"),
//!     "receipt-order-42",
//! );
//! ```

use crate::Response;
use crate::bindings::weft::platform::outbox as wit;

pub use wit::{DeliveryStatus as Status, Error, Message};

/// Queues `message` under `idempotency_key`; returns the message id.
pub fn send(message: impl Into<Message>, idempotency_key: &str) -> Result<String, Error> {
    wit::send(&message.into(), idempotency_key)
}

/// Where message `id` (sent by this plugin) stands, `None` if unknown.
pub fn status(id: &str) -> Option<Status> {
    wit::status(id)
}

/// An email under construction.
#[derive(Debug, Clone)]
pub struct Email(wit::Email);

impl Email {
    /// An email to `address` with `subject`; add an [`Email::html`] or
    /// [`Email::text`] part (or both).
    pub fn to(address: &str, subject: &str) -> Self {
        Self(wit::Email {
            to: address.to_owned(),
            subject: subject.to_owned(),
            html: None,
            text: None,
            headers: Vec::new(),
        })
    }

    /// With an HTML part.
    pub fn html(mut self, html: &str) -> Self {
        self.0.html = Some(html.to_owned());
        self
    }

    /// With a plain-text part.
    pub fn text(mut self, text: &str) -> Self {
        self.0.text = Some(text.to_owned());
        self
    }

    /// With an extra header (e.g. `List-Unsubscribe`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl From<Email> for Message {
    fn from(e: Email) -> Self {
        Message::Email(e.0)
    }
}

/// A text message to an E.164 number.
pub fn sms(to: &str, body: &str) -> Message {
    Message::Sms(wit::Sms {
        to: to.to_owned(),
        body: body.to_owned(),
    })
}

/// A push notification to a device token, with string `data` for the app.
pub fn push(token: &str, title: &str, body: &str, data: &[(&str, &str)]) -> Message {
    Message::Push(wit::Push {
        token: token.to_owned(),
        title: title.to_owned(),
        body: body.to_owned(),
        data: data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

/// An in-app notification for `user` (a user id of the tenant), with an
/// optional link and a JSON object of `data`.
pub fn in_app(
    user: &str,
    title: &str,
    body: &str,
    link: Option<&str>,
    data: &serde_json::Value,
) -> Message {
    Message::InApp(wit::InApp {
        user: user.to_owned(),
        title: title.to_owned(),
        body: body.to_owned(),
        link: link.map(str::to_owned),
        data: data.to_string(),
    })
}

impl Error {
    /// The status and stable `snake_case` code this error answers with.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::InvalidRecipient(_) => (422, "invalid_recipient"),
            Error::RateLimited(_) => (429, "rate_limited"),
            Error::QuotaExceeded(_) => (429, "quota_exceeded"),
            Error::ChannelNotConfigured(_) => (503, "channel_not_configured"),
            Error::InvalidRequest(_) => (400, "invalid_message"),
        }
    }

    /// The host's explanation.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidRecipient(m)
            | Error::RateLimited(m)
            | Error::QuotaExceeded(m)
            | Error::ChannelNotConfigured(m)
            | Error::InvalidRequest(m) => m,
        }
    }
}

/// A JSON error naming what was refused.
impl From<Error> for Response {
    fn from(e: Error) -> Self {
        let (status, code) = e.status_and_code();
        Response::error(status, code, e.message())
    }
}

impl Status {
    /// The `snake_case` name (`queued`, `sent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_4xx_with_their_code() {
        for (err, status, code) in [
            (
                Error::InvalidRecipient("x".into()),
                422,
                "invalid_recipient",
            ),
            (Error::RateLimited("x".into()), 429, "rate_limited"),
            (Error::QuotaExceeded("x".into()), 429, "quota_exceeded"),
            (Error::InvalidRequest("x".into()), 400, "invalid_message"),
        ] {
            let r = Response::from(err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(
                (r.status, body["error"]["code"].as_str()),
                (status, Some(code))
            );
        }
    }

    #[test]
    fn the_email_builder_keeps_every_part() {
        let Message::Email(e) = Message::from(
            Email::to("a@b.co", "s")
                .html("<p>h</p>")
                .text("t")
                .header("X-A", "1"),
        ) else {
            panic!("not an email");
        };
        assert_eq!(
            (e.html.as_deref(), e.text.as_deref(), e.headers.len()),
            (Some("<p>h</p>"), Some("t"), 1)
        );
    }
}
