//! Provider-neutral messages, the result of sending one, and the sender
//! traits an outbox dispatches through.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use lettre::message::Mailbox;

use crate::error::{Provider, Result, SendError};

/// One email to one recipient.
///
/// One recipient per message on purpose: each recipient then has its own
/// provider id, its own delivery status and its own retry, which is what an
/// outbox tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The sender, `addr@example.com` or `Name <addr@example.com>`.
    pub from: String,
    /// The recipient, in the same forms.
    pub to: String,
    /// Where replies should go, if not to `from`.
    pub reply_to: Option<String>,
    /// The subject line (any Unicode, no line breaks).
    pub subject: String,
    /// The HTML body. At least one of `html` and `text` is required; with
    /// both, the message is `multipart/alternative`.
    pub html: Option<String>,
    /// The plain-text body.
    pub text: Option<String>,
    /// Extra headers passed through unchanged, e.g. `List-Unsubscribe:
    /// <https://…/u/abc>` and `List-Unsubscribe-Post:
    /// List-Unsubscribe=One-Click` for one-click unsubscribe (RFC 8058).
    /// Headers the message structure owns (`From`, `To`, `Subject`,
    /// `Content-Type`, …) are refused; see [`Email::RESERVED_HEADERS`].
    pub headers: Vec<(String, String)>,
}

/// One text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The sending number in E.164 form (`+15551234567`) or an alphanumeric
    /// sender id; may be empty when the sender is configured with a
    /// messaging service that picks the number.
    pub from: String,
    /// The recipient in E.164 form.
    pub to: String,
    /// The text.
    pub body: String,
}

/// One push notification to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The device's registration token.
    pub token: String,
    /// The notification title.
    pub title: String,
    /// The notification text.
    pub body: String,
    /// Key/value data delivered to the app alongside the notification.
    pub data: BTreeMap<String, String>,
}

/// A message the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id for the message, the one its status webhooks
    /// name (see [`StatusEvent::provider_id`](crate::StatusEvent)): the
    /// `Message-ID` for SMTP and Mailgun (without angle brackets),
    /// `X-Message-Id` for SendGrid, the `SM…` sid for Twilio, the message
    /// name for FCM.
    pub provider_id: String,
}

/// The future a sender trait returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent>> + Send + 'a>>;

/// Something that delivers [`Email`]s: [`SmtpSender`](crate::SmtpSender),
/// [`SendGridSender`](crate::SendGridSender),
/// [`MailgunSender`](crate::MailgunSender). Object safe, so an outbox can
/// hold each tenant's choice as `Arc<dyn EmailSender>`.
pub trait EmailSender: Send + Sync {
    /// Sends one email.
    fn send_email<'a>(&'a self, email: &'a Email) -> SendFuture<'a>;
}

/// Something that delivers [`Sms`]es: [`TwilioSender`](crate::TwilioSender).
pub trait SmsSender: Send + Sync {
    /// Sends one text message.
    fn send_sms<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a>;
}

/// Something that delivers [`Push`]es: [`FcmSender`](crate::FcmSender).
pub trait PushSender: Send + Sync {
    /// Sends one push notification.
    fn send_push<'a>(&'a self, push: &'a Push) -> SendFuture<'a>;
}

impl Email {
    /// Headers a caller may not set: the message's structure owns them, and
    /// SendGrid refuses them as custom headers. Compared case-insensitively.
    pub const RESERVED_HEADERS: [&'static str; 15] = [
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "sender",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
        "return-path",
        "received",
        "dkim-signature",
        "x-sg-id",
        "x-sg-eid",
    ];

    /// Checks what every provider needs before anything is sent, and parses
    /// the addresses.
    pub(crate) fn check(&self, provider: Provider) -> Result<CheckedEmail<'_>> {
        let invalid = |message: String| SendError::invalid(provider, message);
        let mailbox = |field: &str, value: &str| {
            value
                .parse::<Mailbox>()
                .map_err(|e| invalid(format!("invalid {field} address: {e}")))
        };
        let from = mailbox("from", &self.from)?;
        let to = mailbox("to", &self.to)?;
        let reply_to = match &self.reply_to {
            Some(value) => Some(mailbox("reply-to", value)?),
            None => None,
        };
        if has_line_break(&self.subject) {
            return Err(invalid("the subject contains a line break".into()));
        }
        if self.html.is_none() && self.text.is_none() {
            return Err(invalid(
                "the email has neither a text nor an HTML body".into(),
            ));
        }
        for (name, value) in &self.headers {
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !name_ok {
                return Err(invalid(format!("invalid header name {name:?}")));
            }
            if Self::RESERVED_HEADERS
                .iter()
                .any(|reserved| name.eq_ignore_ascii_case(reserved))
            {
                return Err(invalid(format!(
                    "header {name} cannot be set by the caller"
                )));
            }
            // A line break in a value would let the caller inject headers.
            if has_line_break(value) {
                return Err(invalid(format!("header {name} contains a line break")));
            }
        }
        Ok(CheckedEmail {
            email: self,
            from,
            to,
            reply_to,
        })
    }

    /// The value of the first caller header named `name`
    /// (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An [`Email`] whose addresses parsed and whose headers are safe.
pub(crate) struct CheckedEmail<'a> {
    pub email: &'a Email,
    pub from: Mailbox,
    pub to: Mailbox,
    pub reply_to: Option<Mailbox>,
}

fn has_line_break(text: &str) -> bool {
    text.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            from: "Weft <noreply@weft.test>".into(),
            to: "ada@example.com".into(),
            reply_to: None,
            subject: "Hi".into(),
            html: None,
            text: Some("hello".into()),
            headers: vec![("List-Unsubscribe".into(), "<https://u.test/x>".into())],
        }
    }

    #[test]
    fn a_plain_email_passes() {
        let email = email();
        let checked = email.check(Provider::Smtp).expect("valid");
        assert_eq!(checked.from.name.as_deref(), Some("Weft"));
        assert_eq!(checked.to.email.to_string(), "ada@example.com");
    }

    #[test]
    fn header_injection_and_reserved_headers_are_refused() {
        let mut bad = email();
        bad.headers = vec![("X-Tag".into(), "a\r\nBcc: eve@evil.test".into())];
        assert!(bad.check(Provider::Smtp).is_err());
        bad.headers = vec![("bcc".into(), "eve@evil.test".into())];
        assert!(bad.check(Provider::Smtp).is_err());
        bad.headers = vec![("Bad Name".into(), "x".into())];
        assert!(bad.check(Provider::Smtp).is_err());
    }

    #[test]
    fn bad_addresses_and_missing_bodies_are_permanent() {
        let mut bad = email();
        bad.to = "not an address".into();
        let error = bad.check(Provider::SendGrid).err().expect("refused");
        assert!(!error.is_transient());
        let mut bad = email();
        bad.text = None;
        assert!(bad.check(Provider::SendGrid).is_err());
    }
}
