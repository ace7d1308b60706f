//! The fake Twilio: `POST /2010-04-01/Accounts/{sid}/Messages.json` and
//! HMAC-SHA1-signed status callbacks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use serde_json::json;

use super::{
    Accepted, Ledger, Server, SignedWebhook, basic_auth, content_type_is, form_get, form_pairs,
    random_hex,
};
use crate::twilio::TwilioConfig;
use crate::types::Sms;
use crate::webhook::{DeliveryStatus, TWILIO_SIGNATURE_HEADER, twilio_signature};

/// Twilio's limit on a (concatenated) message body, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// A running fake Twilio; it stops when dropped.
///
/// It checks, like Twilio: HTTP basic auth with the fake's
/// [`account_sid`](FakeTwilio::account_sid) (also in the path) and
/// [`auth_token`](FakeTwilio::auth_token) (20003 otherwise); a form body;
/// `To` present (21604) and in E.164 form (21211); `From` (E.164, a short
/// code or an alphanumeric sender id, else 21212) or a `MessagingServiceSid`
/// (`MG` and 32 hex digits, else 21701), one of them required (21603);
/// `Body` present (21602) and at most 1600 characters (21617); a
/// `StatusCallback`, if any, an http(s) URL (21609). Refusals use Twilio's
/// `{"code", "message", "more_info", "status"}`; a refused recipient gets
/// 21610 (unsubscribed). Success is 201 with a Message resource, `status`
/// `queued` (`accepted` through a messaging service).
pub struct FakeTwilio {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio")
            .field("addr", &self.server.addr)
            .field("account_sid", &self.shared.account_sid)
            .finish()
    }
}

struct Shared {
    ledger: Ledger<Sms>,
    account_sid: String,
    auth_token: String,
}

impl FakeTwilio {
    /// Starts the fake on `127.0.0.1` at a free port, with a fresh account
    /// sid and auth token.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; [`FakeTwilio::try_start`] returns
    /// the error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake Twilio cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn try_start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            ledger: Ledger::new(),
            account_sid: format!("AC{}", random_hex(16)),
            auth_token: random_hex(16),
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
            .with_state(Arc::clone(&shared));
        let server = Server::serve(Server::bind().await?, app)?;
        Ok(Self { server, shared })
    }

    /// Stops keeping messages (they are still counted), for long runs.
    pub fn without_recording(self) -> Self {
        self.shared.ledger.set_recording(false);
        self
    }

    /// The base URL for [`TwilioConfig::with_base_url`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The account sid the fake accepts.
    pub fn account_sid(&self) -> String {
        self.shared.account_sid.clone()
    }

    /// The auth token the fake accepts and signs callbacks with (configure
    /// [`TwilioWebhook::new`](crate::TwilioWebhook::new) with it).
    pub fn auth_token(&self) -> String {
        self.shared.auth_token.clone()
    }

    /// A sender configuration for this fake: its credentials, its URL, a
    /// 5 s timeout.
    pub fn config(&self) -> TwilioConfig {
        TwilioConfig::new(self.account_sid(), self.auth_token())
            .with_base_url(self.base_url())
            .with_timeout(std::time::Duration::from_secs(5))
    }

    /// Answers `status` (500, 503, 429, …) to the next `times`
    /// authenticated calls.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.shared.ledger.fail_next(times, status);
    }

    /// Refuses messages to `number` (E.164) from now on, with 21610.
    pub fn refuse_recipient(&self, number: impl Into<String>) {
        self.shared.ledger.refuse(number.into());
    }

    /// The messages accepted so far, oldest first. A message sent through
    /// a messaging service has an empty `from`; `raw` holds every field.
    pub fn accepted(&self) -> Vec<Accepted<Sms>> {
        self.shared.ledger.accepted()
    }

    /// How many messages were accepted (also without recording).
    pub fn accepted_count(&self) -> usize {
        self.shared.ledger.accepted_count()
    }

    /// How many Messages calls arrived, refused ones included.
    pub fn calls(&self) -> usize {
        self.shared.ledger.calls()
    }

    /// Forgets messages, counts and scripted trouble.
    pub fn reset(&self) {
        self.shared.ledger.reset();
    }

    /// A status callback for message `sid` to `url`, signed as Twilio
    /// signs it (over `url` exactly). Statuses become Twilio's: Queued
    /// `queued`, Sent `sent`, Delivered `delivered`, Bounced `undelivered`
    /// (ErrorCode 30003), Failed `failed` (30008); SMS has no complaint or
    /// unsubscribe status, so those become `failed` with 21610.
    pub fn signed_status(&self, url: &str, sid: &str, status: DeliveryStatus) -> SignedWebhook {
        let (name, error_code) = match status {
            DeliveryStatus::Queued => ("queued", None),
            DeliveryStatus::Sent => ("sent", None),
            DeliveryStatus::Delivered => ("delivered", None),
            DeliveryStatus::Bounced => ("undelivered", Some("30003")),
            DeliveryStatus::Failed => ("failed", Some("30008")),
            DeliveryStatus::Complained | DeliveryStatus::Unsubscribed => ("failed", Some("21610")),
        };
        let sent = self.shared.ledger.find(sid);
        let to = sent
            .as_ref()
            .map(|a| a.message.to.clone())
            .unwrap_or_default();
        let from = sent.map(|a| a.message.from).unwrap_or_default();
        let mut params: Vec<(String, String)> = vec![
            ("ApiVersion".into(), "2010-04-01".into()),
            ("AccountSid".into(), self.shared.account_sid.clone()),
            ("MessageSid".into(), sid.to_owned()),
            ("SmsSid".into(), sid.to_owned()),
            ("MessageStatus".into(), name.into()),
            ("SmsStatus".into(), name.into()),
            ("To".into(), to),
            ("From".into(), from),
        ];
        if let Some(code) = error_code {
            params.push(("ErrorCode".into(), code.into()));
        }
        let signature = twilio_signature(&self.shared.auth_token, url, &params);
        SignedWebhook {
            url: url.to_owned(),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                (TWILIO_SIGNATURE_HEADER.into(), signature),
            ],
            body: crate::http::form(
                &params
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            )
            .into_bytes(),
        }
    }

    /// Signs and posts [`FakeTwilio::signed_status`]; the answer's status.
    ///
    /// # Errors
    ///
    /// If the receiver cannot be reached.
    pub async fn post_status(
        &self,
        url: &str,
        sid: &str,
        status: DeliveryStatus,
    ) -> std::io::Result<u16> {
        self.signed_status(url, sid, status).post().await
    }
}

/// Twilio's error body.
fn error(status: u16, code: u32, message: &str) -> Response {
    super::json(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ledger = &shared.ledger;
    ledger.count_call();
    let auth_ok = basic_auth(&headers).is_some_and(|(user, token)| {
        user == shared.account_sid && token == shared.auth_token && sid == shared.account_sid
    });
    if !auth_ok {
        return error(401, 20003, "Authenticate");
    }
    if let Some(status) = ledger.scripted_failure() {
        return match status {
            429 => error(429, 20429, "Too Many Requests"),
            503 => error(503, 20503, "Service Unavailable"),
            _ => error(status, 20500, "An internal server error has occurred"),
        };
    }
    if !content_type_is(&headers, "application/x-www-form-urlencoded") {
        return error(400, 21600, "Invalid request content type");
    }
    let Some(fields) = form_pairs(&body) else {
        return error(400, 21600, "Malformed form body");
    };
    let (sms, via_service) = match check(&fields) {
        Ok(checked) => checked,
        Err((code, message)) => return error(400, code, &message),
    };
    if ledger.is_refused(&sms.to) {
        return error(400, 21610, "Attempt to send to unsubscribed recipient");
    }
    let message_sid = format!("SM{}", random_hex(16));
    let status = if via_service { "accepted" } else { "queued" };
    let answer = json!({
        "sid": message_sid,
        "account_sid": shared.account_sid,
        "messaging_service_sid": form_get(&fields, "MessagingServiceSid"),
        "to": sms.to,
        "from": if via_service { None } else { Some(&sms.from) },
        "body": sms.body,
        "status": status,
        "num_segments": segments(&sms.body).to_string(),
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "price": null,
        "error_code": null,
        "error_message": null,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{message_sid}.json", shared.account_sid),
    });
    ledger.accept(Accepted {
        provider_id: message_sid,
        message: sms,
        raw: String::from_utf8_lossy(&body).into_owned(),
    });
    super::json(201, &answer)
}

/// What Twilio checks, in its order; on success the message and whether it
/// goes through a messaging service.
fn check(fields: &[(String, String)]) -> Result<(Sms, bool), (u32, String)> {
    let get = |name: &str| form_get(fields, name).filter(|v| !v.is_empty());
    let Some(to) = get("To") else {
        return Err((21604, "A 'To' phone number is required.".into()));
    };
    if !is_e164(to) {
        return Err((
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    let from = get("From");
    let service = get("MessagingServiceSid");
    match (from, service) {
        (None, None) => return Err((21603, "A 'From' phone number is required.".into())),
        (Some(from), _) if !is_e164(from) && !is_short_code(from) && !is_alphanumeric_id(from) => {
            return Err((
                21212,
                format!(
                    "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
                ),
            ));
        }
        (_, Some(service)) if !is_sid(service, "MG") => {
            return Err((
                21701,
                format!("The Messaging Service Sid {service} is invalid."),
            ));
        }
        _ => {}
    }
    let Some(body) = get("Body") else {
        return Err((21602, "Message body is required.".into()));
    };
    if body.chars().count() > MAX_BODY_CHARS {
        return Err((
            21617,
            "The concatenated message body exceeds the 1600 character limit.".into(),
        ));
    }
    if let Some(callback) = get("StatusCallback")
        && !(callback.starts_with("http://") || callback.starts_with("https://"))
    {
        return Err((
            21609,
            format!("The StatusCallback URL {callback} is not a valid URL."),
        ));
    }
    let sms = Sms {
        from: from.unwrap_or_default().to_owned(),
        to: to.to_owned(),
        body: body.to_owned(),
    };
    Ok((sms, from.is_none()))
}

/// `+` then 2 to 15 digits, the first not 0.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn is_short_code(number: &str) -> bool {
    (5..=6).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

/// Up to 11 letters, digits and spaces, at least one letter.
fn is_alphanumeric_id(id: &str) -> bool {
    (1..=11).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && id.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `prefix` then 32 hex digits.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// GSM-7 segments of 153 characters (160 for one).
fn segments(body: &str) -> usize {
    let chars = body.chars().count();
    if chars <= 160 { 1 } else { chars.div_ceil(153) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_and_sender_ids() {
        assert!(is_e164("+15551234567"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+1555123456789012"));
        assert!(is_alphanumeric_id("Weft"));
        assert!(!is_alphanumeric_id("12345678"));
        assert!(is_sid(&format!("MG{}", "a".repeat(32)), "MG"));
        assert_eq!(segments(&"x".repeat(161)), 2);
    }

    #[test]
    fn checks_in_twilios_order() {
        let fields = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            check(&fields(&[("Body", "x")])).err().map(|e| e.0),
            Some(21604)
        );
        assert_eq!(
            check(&fields(&[("To", "555"), ("Body", "x")]))
                .err()
                .map(|e| e.0),
            Some(21211)
        );
        assert_eq!(
            check(&fields(&[("To", "+15551234567"), ("Body", "x")]))
                .err()
                .map(|e| e.0),
            Some(21603)
        );
        assert_eq!(
            check(&fields(&[("To", "+15551234567"), ("From", "+15557654321")]))
                .err()
                .map(|e| e.0),
            Some(21602)
        );
        let (sms, via_service) = check(&fields(&[
            ("To", "+15551234567"),
            ("From", "+15557654321"),
            ("Body", "hi"),
        ]))
        .expect("valid");
        assert_eq!(sms.body, "hi");
        assert!(!via_service);
    }
}
