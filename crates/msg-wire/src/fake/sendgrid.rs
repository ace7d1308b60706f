//! The fake SendGrid: `POST /v3/mail/send` and ECDSA-signed Event Webhook
//! posts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::{Accepted, Ledger, Server, SignedWebhook, bearer, content_type_is, random_hex};
use crate::fcm::unix_now;
use crate::sendgrid::{MAIL_SEND_PATH, SendGridConfig};
use crate::types::Email;
use crate::webhook::{
    DeliveryStatus, SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, spki_from_p256_point,
};

/// A running fake SendGrid; it stops when dropped.
///
/// It checks, like SendGrid: `Authorization: Bearer` (the key set with
/// [`FakeSendGrid::with_api_key`], else any non-empty one; 401 otherwise),
/// a JSON body with at least one personalization whose `to` holds valid
/// addresses, a valid `from.email`, a `subject`, non-empty `content` with
/// `text/plain` before `text/html` and each type at most once, string
/// header values and no reserved headers. Refusals are 400s with
/// SendGrid's `{"errors": [{"message", "field", "help"}]}`. Success is 202
/// with an `X-Message-Id`. A refused recipient (a suppression, for the
/// fake) is a 400 naming the recipient's field.
pub struct FakeSendGrid {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeSendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSendGrid")
            .field("addr", &self.server.addr)
            .finish()
    }
}

struct Shared {
    ledger: Ledger<Email>,
    api_key: Mutex<Option<String>>,
    signing_key: EcdsaKeyPair,
}

impl FakeSendGrid {
    /// Starts the fake on `127.0.0.1` at a free port, with a fresh webhook
    /// signing key.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; [`FakeSendGrid::try_start`]
    /// returns the error instead.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake SendGrid cannot start: {e}"),
        }
    }

    /// Starts the fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound or no signing key can be made.
    pub async fn try_start() -> std::io::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| std::io::Error::other("cannot generate a P-256 key"))?;
        let signing_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                .map_err(|_| std::io::Error::other("cannot load the P-256 key"))?;
        let shared = Arc::new(Shared {
            ledger: Ledger::new(),
            api_key: Mutex::new(None),
            signing_key,
        });
        let app = Router::new()
            .route(MAIL_SEND_PATH, post(mail_send))
            .with_state(Arc::clone(&shared));
        let server = Server::serve(Server::bind().await?, app)?;
        Ok(Self { server, shared })
    }

    /// Requires exactly `key` from now on.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        *self.lock_key() = Some(key.into());
        self
    }

    /// Stops keeping messages (they are still counted), for long runs.
    pub fn without_recording(self) -> Self {
        self.shared.ledger.set_recording(false);
        self
    }

    fn lock_key(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.shared
            .api_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL for [`SendGridConfig::with_base_url`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// A sender configuration for this fake: its key (or `SG.fake-key`),
    /// its URL, a 5 s timeout.
    pub fn config(&self) -> SendGridConfig {
        let key = self
            .lock_key()
            .clone()
            .unwrap_or_else(|| "SG.fake-key".into());
        SendGridConfig::new(key)
            .with_base_url(self.base_url())
            .with_timeout(std::time::Duration::from_secs(5))
    }

    /// The Event Webhook verification key, base64 DER SubjectPublicKeyInfo
    /// as SendGrid shows it, for [`SendGridWebhook::new`](crate::SendGridWebhook::new).
    pub fn webhook_public_key(&self) -> String {
        STANDARD.encode(spki_from_p256_point(
            self.shared.signing_key.public_key().as_ref(),
        ))
    }

    /// Answers `status` (500, 503, 429, …) to the next `times`
    /// authenticated calls.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.shared.ledger.fail_next(times, status);
    }

    /// Refuses mail to `address` (the bare address) from now on.
    pub fn refuse_recipient(&self, address: impl Into<String>) {
        self.shared.ledger.refuse(address.into());
    }

    /// The messages accepted so far, oldest first.
    pub fn accepted(&self) -> Vec<Accepted<Email>> {
        self.shared.ledger.accepted()
    }

    /// How many messages were accepted (also without recording).
    pub fn accepted_count(&self) -> usize {
        self.shared.ledger.accepted_count()
    }

    /// How many Mail Send calls arrived, refused ones included.
    pub fn calls(&self) -> usize {
        self.shared.ledger.calls()
    }

    /// Forgets messages, counts and scripted trouble.
    pub fn reset(&self) {
        self.shared.ledger.reset();
    }

    /// An Event Webhook post for `events` (each an `X-Message-Id` and the
    /// status to report), signed now. Statuses become SendGrid events:
    /// Queued and Sent `processed`, Delivered `delivered`, Bounced
    /// `bounce`, Failed `dropped`, Complained `spamreport`, Unsubscribed
    /// `unsubscribe`.
    pub fn signed_events(&self, url: &str, events: &[(&str, DeliveryStatus)]) -> SignedWebhook {
        self.signed_events_at(url, events, unix_now())
    }

    /// [`FakeSendGrid::signed_events`] signed with timestamp `timestamp`
    /// (Unix seconds), to test stale-timestamp refusal.
    pub fn signed_events_at(
        &self,
        url: &str,
        events: &[(&str, DeliveryStatus)],
        timestamp: u64,
    ) -> SignedWebhook {
        let body: Vec<Value> = events
            .iter()
            .map(|(id, status)| self.event(id, *status, timestamp))
            .collect();
        let body = Value::Array(body).to_string().into_bytes();
        let timestamp = timestamp.to_string();
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(&body);
        let signature = self
            .shared
            .signing_key
            .sign(&SystemRandom::new(), &signed)
            .map(|s| STANDARD.encode(s.as_ref()))
            // Signing only fails without system randomness; an unsigned
            // post then fails verification, which a test will notice.
            .unwrap_or_default();
        SignedWebhook {
            url: url.to_owned(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (SENDGRID_SIGNATURE_HEADER.into(), signature),
                (SENDGRID_TIMESTAMP_HEADER.into(), timestamp),
            ],
            body,
        }
    }

    /// Signs and posts [`FakeSendGrid::signed_events`]; the answer's status.
    ///
    /// # Errors
    ///
    /// If the receiver cannot be reached.
    pub async fn post_events(
        &self,
        url: &str,
        events: &[(&str, DeliveryStatus)],
    ) -> std::io::Result<u16> {
        self.signed_events(url, events).post().await
    }

    fn event(&self, id: &str, status: DeliveryStatus, timestamp: u64) -> Value {
        let email = self
            .shared
            .ledger
            .find(id)
            .map(|a| bare_address(&a.message.to))
            .unwrap_or_else(|| "unknown@fake.test".into());
        let name = match status {
            DeliveryStatus::Queued | DeliveryStatus::Sent => "processed",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Bounced => "bounce",
            DeliveryStatus::Failed => "dropped",
            DeliveryStatus::Complained => "spamreport",
            DeliveryStatus::Unsubscribed => "unsubscribe",
        };
        let mut event = json!({
            "email": email,
            "timestamp": timestamp,
            "smtp-id": format!("<{id}@fake.sendgrid.test>"),
            "event": name,
            "category": [],
            "sg_event_id": random_hex(11),
            "sg_message_id": format!("{id}.filterdrecv-fake-1-{}-0", random_hex(4)),
        });
        match status {
            DeliveryStatus::Bounced => {
                event["type"] = json!("bounce");
                event["status"] = json!("5.1.1");
                event["reason"] =
                    json!("550 5.1.1 The email account that you tried to reach does not exist.");
            }
            DeliveryStatus::Failed => event["reason"] = json!("Bounced Address"),
            DeliveryStatus::Delivered => event["response"] = json!("250 OK"),
            _ => {}
        }
        event
    }
}

/// `addr` out of `Name <addr>`.
fn bare_address(mailbox: &str) -> String {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(start), Some(end)) if start < end => mailbox[start + 1..end].to_owned(),
        _ => mailbox.trim().to_owned(),
    }
}

/// SendGrid's error body.
fn error(status: u16, field: Option<&str>, message: &str) -> Response {
    super::json(
        status,
        &json!({"errors": [{"message": message, "field": field, "help": null}]}),
    )
}

async fn mail_send(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let ledger = &shared.ledger;
    ledger.count_call();
    let key_ok = {
        let expected = shared.api_key.lock().unwrap_or_else(|e| e.into_inner());
        match (bearer(&headers), expected.as_deref()) {
            (Some(given), Some(expected)) => given == expected,
            (Some(given), None) => !given.is_empty(),
            (None, _) => false,
        }
    };
    if !key_ok {
        return error(
            401,
            None,
            "The provided authorization grant is invalid, expired, or revoked",
        );
    }
    if let Some(status) = ledger.scripted_failure() {
        let message = if status == 429 {
            "too many requests"
        } else {
            "internal server error"
        };
        return error(status, None, message);
    }
    if !content_type_is(&headers, "application/json") {
        return error(415, None, "Content-Type should be application/json.");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, None, "Bad Request");
    };
    let email = match check(&request) {
        Ok(email) => email,
        Err((field, message)) => return error(400, Some(&field), &message),
    };
    let to = bare_address(&email.to);
    if ledger.is_refused(&to) {
        return error(
            400,
            Some("personalizations.0.to.0.email"),
            &format!("The recipient {to} is suppressed and cannot receive mail."),
        );
    }
    let id = fake_message_id();
    ledger.accept(Accepted {
        provider_id: id.clone(),
        message: email,
        raw: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-message-id", value);
    }
    response
}

/// A 22-character id in the alphabet SendGrid's ids use.
fn fake_message_id() -> String {
    let hex = random_hex(16);
    STANDARD
        .encode(hex.as_bytes())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(22)
        .collect()
}

/// What SendGrid checks, in its order; the first refusal as (field,
/// message). On success, the email decoded back (first recipient).
fn check(request: &Value) -> Result<Email, (String, String)> {
    let refuse = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
    let Some(personalizations) = request["personalizations"]
        .as_array()
        .filter(|p| !p.is_empty())
    else {
        return refuse(
            "personalizations",
            "The personalizations field is required and must have at least one personalization.",
        );
    };
    for (i, personalization) in personalizations.iter().enumerate() {
        let Some(to) = personalization["to"].as_array().filter(|t| !t.is_empty()) else {
            return refuse(
                &format!("personalizations.{i}.to"),
                "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
            );
        };
        for (j, address) in to.iter().enumerate() {
            if !address["email"].as_str().is_some_and(super::valid_mailbox) {
                return refuse(
                    &format!("personalizations.{i}.to.{j}.email"),
                    "Does not contain a valid address.",
                );
            }
        }
    }
    let from = &request["from"];
    match from["email"].as_str() {
        None => {
            return refuse(
                "from.email",
                "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.",
            );
        }
        Some(address) if !super::valid_mailbox(address) => {
            return refuse(
                "from.email",
                "The from email does not contain a valid address.",
            );
        }
        Some(_) => {}
    }
    let personal_subjects = personalizations
        .iter()
        .all(|p| p["subject"].as_str().is_some_and(|s| !s.is_empty()));
    let subject = request["subject"].as_str().filter(|s| !s.is_empty());
    if subject.is_none() && !personal_subjects {
        return refuse(
            "subject",
            "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
        );
    }
    let Some(content) = request["content"].as_array().filter(|c| !c.is_empty()) else {
        return refuse(
            "content",
            "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.",
        );
    };
    let mut text = None;
    let mut html = None;
    for (i, block) in content.iter().enumerate() {
        let Some(value) = block["value"].as_str().filter(|v| !v.is_empty()) else {
            return refuse(
                &format!("content.{i}.value"),
                "The content value must be a string at least one character in length.",
            );
        };
        match block["type"].as_str() {
            Some("text/plain") if i == 0 => text = Some(value.to_owned()),
            Some("text/plain") => {
                return refuse(
                    &format!("content.{i}.type"),
                    "If present, text/plain must be first, followed by text/html, followed by any other content.",
                );
            }
            Some("text/html") if html.is_none() => html = Some(value.to_owned()),
            Some("text/html") => {
                return refuse(
                    &format!("content.{i}.type"),
                    "If present, text/plain and text/html may only be provided once.",
                );
            }
            Some(t) if !t.is_empty() => {}
            _ => {
                return refuse(
                    &format!("content.{i}.type"),
                    "The content type cannot contain ';', or CRLF characters, and must be at least one character long.",
                );
            }
        }
    }
    let mut custom = Vec::new();
    if let Some(headers) = request.get("headers") {
        let Some(headers) = headers.as_object() else {
            return refuse("headers", "Invalid type. Expected: object, given: other.");
        };
        for (name, value) in headers {
            if Email::RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
            {
                return refuse(
                    "headers",
                    &format!("The following header is reserved and cannot be used: {name}"),
                );
            }
            let Some(value) = value.as_str() else {
                return refuse(
                    &format!("headers.{name}"),
                    "Invalid type. Expected: string.",
                );
            };
            custom.push((name.clone(), value.to_owned()));
        }
    }
    let mailbox = |v: &Value| {
        let email = v["email"].as_str().unwrap_or_default();
        match v["name"].as_str() {
            Some(name) => format!("{name} <{email}>"),
            None => email.to_owned(),
        }
    };
    Ok(Email {
        from: mailbox(from),
        to: mailbox(&personalizations[0]["to"][0]),
        reply_to: request.get("reply_to").map(mailbox),
        subject: subject
            .or_else(|| personalizations[0]["subject"].as_str())
            .unwrap_or_default()
            .to_owned(),
        html,
        text,
        headers: custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({
            "personalizations": [{"to": [{"email": "ada@example.com"}]}],
            "from": {"email": "noreply@weft.test", "name": "Weft"},
            "subject": "Hi",
            "content": [{"type": "text/plain", "value": "Hi"}, {"type": "text/html", "value": "<p>Hi</p>"}],
        })
    }

    #[test]
    fn accepts_a_proper_request_and_decodes_it() {
        let email = check(&request()).expect("valid");
        assert_eq!(email.from, "Weft <noreply@weft.test>");
        assert_eq!(email.text.as_deref(), Some("Hi"));
    }

    #[test]
    fn refuses_html_before_text_and_missing_fields() {
        let mut wrong_order = request();
        wrong_order["content"] = json!([{"type": "text/html", "value": "<p>Hi</p>"}, {"type": "text/plain", "value": "Hi"}]);
        assert_eq!(
            check(&wrong_order).err().map(|e| e.0).as_deref(),
            Some("content.1.type")
        );
        let mut no_subject = request();
        no_subject["subject"] = Value::Null;
        assert_eq!(
            check(&no_subject).err().map(|e| e.0).as_deref(),
            Some("subject")
        );
        let mut bad_to = request();
        bad_to["personalizations"][0]["to"][0]["email"] = json!("nope");
        assert!(check(&bad_to).is_err());
    }
}
