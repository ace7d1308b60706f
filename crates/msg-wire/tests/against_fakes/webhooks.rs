//! The verifiers against the fakes' signed webhooks: accepted as posted,
//! refused when tampered with, signed with another key, or stale.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use weft_msg_wire::fake::SignedWebhook;
use weft_msg_wire::{
    DeliveryStatus, FakeMailgun, FakeSendGrid, FakeTwilio, MailgunSender, MailgunWebhook, Provider,
    SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, SendGridSender, SendGridWebhook, Sms,
    StatusEvent, TWILIO_SIGNATURE_HEADER, TwilioSender, TwilioWebhook, WebhookError,
};

use super::{email, install_ring};

const HOUR: u64 = 3600;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tampered(mut hook: SignedWebhook) -> Vec<u8> {
    let at = hook.body.len() / 2;
    hook.body[at] ^= 0x01;
    hook.body
}

/// A receiver as the host would run one: verify, then record.
#[derive(Clone)]
struct Receiver {
    base_url: String,
    twilio: TwilioWebhook,
    sendgrid: SendGridWebhook,
    mailgun: MailgunWebhook,
    events: Arc<Mutex<Vec<StatusEvent>>>,
}

impl Receiver {
    async fn start(twilio: &FakeTwilio, sendgrid: &FakeSendGrid, mailgun: &FakeMailgun) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Self {
            base_url,
            twilio: TwilioWebhook::new(&twilio.auth_token()),
            sendgrid: SendGridWebhook::new(&sendgrid.webhook_public_key()).expect("key"),
            mailgun: MailgunWebhook::new(&mailgun.webhook_signing_key()),
            events: Arc::default(),
        };
        let app = Router::new()
            .route("/twilio/status", post(twilio_status))
            .route("/sendgrid/events", post(sendgrid_events))
            .route("/mailgun/events", post(mailgun_events))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn record(&self, events: impl IntoIterator<Item = StatusEvent>) -> StatusCode {
        self.events.lock().expect("lock").extend(events);
        StatusCode::NO_CONTENT
    }
}

fn refuse(error: &WebhookError) -> StatusCode {
    match error {
        WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn twilio_status(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let url = r.url("/twilio/status");
    match r
        .twilio
        .verify(&url, &body, header(&headers, TWILIO_SIGNATURE_HEADER))
    {
        Ok(event) => r.record([event]),
        Err(e) => refuse(&e),
    }
}

async fn sendgrid_events(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = header(&headers, SENDGRID_SIGNATURE_HEADER);
    let timestamp = header(&headers, SENDGRID_TIMESTAMP_HEADER);
    match r.sendgrid.verify(&body, signature, timestamp) {
        Ok(events) => r.record(events),
        Err(e) => refuse(&e),
    }
}

async fn mailgun_events(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    match r.mailgun.verify(&body) {
        Ok(event) => r.record(event),
        Err(e) => refuse(&e),
    }
}

#[tokio::test]
async fn posted_webhooks_reach_the_receiver_as_status_events() {
    install_ring();
    let twilio = FakeTwilio::start().await;
    let sendgrid = FakeSendGrid::start().await;
    let mailgun = FakeMailgun::start().await;
    let receiver = Receiver::start(&twilio, &sendgrid, &mailgun).await;

    let sms = Sms {
        from: "+15557654321".into(),
        to: "+15551234567".into(),
        body: "hi".into(),
    };
    let sms_id = TwilioSender::new(twilio.config())
        .expect("sender")
        .send(&sms)
        .await
        .expect("sent")
        .provider_id;
    let sg_id = SendGridSender::new(sendgrid.config())
        .expect("sender")
        .send(&email("ada@example.com"))
        .await
        .expect("sent")
        .provider_id;
    let mg_id = MailgunSender::new(mailgun.config())
        .expect("sender")
        .send(&email("bob@example.com"))
        .await
        .expect("sent")
        .provider_id;

    let status = twilio
        .post_status(
            &receiver.url("/twilio/status"),
            &sms_id,
            DeliveryStatus::Bounced,
        )
        .await
        .expect("posted");
    assert_eq!(status, 204);
    let status = sendgrid
        .post_events(
            &receiver.url("/sendgrid/events"),
            &[
                (&sg_id, DeliveryStatus::Queued),
                (&sg_id, DeliveryStatus::Delivered),
            ],
        )
        .await
        .expect("posted");
    assert_eq!(status, 204);
    let status = mailgun
        .post_event(
            &receiver.url("/mailgun/events"),
            &mg_id,
            DeliveryStatus::Bounced,
        )
        .await
        .expect("posted");
    assert_eq!(status, 204);

    let events = receiver.events.lock().expect("lock").clone();
    let seen: Vec<(Provider, &str, DeliveryStatus)> = events
        .iter()
        .map(|e| (e.provider, e.provider_id.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            (Provider::Twilio, sms_id.as_str(), DeliveryStatus::Bounced),
            (Provider::SendGrid, sg_id.as_str(), DeliveryStatus::Queued),
            (
                Provider::SendGrid,
                sg_id.as_str(),
                DeliveryStatus::Delivered
            ),
            (Provider::Mailgun, mg_id.as_str(), DeliveryStatus::Bounced),
        ]
    );
    assert_eq!(events[0].recipient.as_deref(), Some("+15551234567"));
    assert_eq!(events[0].reason.as_deref(), Some("30003"));
    assert_eq!(events[1].recipient.as_deref(), Some("ada@example.com"));
    assert_eq!(events[3].recipient.as_deref(), Some("bob@example.com"));
    assert!(
        events[3]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("does not exist"))
    );

    // A forged post is refused by the receiver.
    let mut forged = twilio.signed_status(
        &receiver.url("/twilio/status"),
        &sms_id,
        DeliveryStatus::Delivered,
    );
    forged.body = tampered(forged.clone());
    assert_eq!(forged.post().await.expect("posted"), 401);
    assert_eq!(receiver.events.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn twilio_signatures_are_checked() {
    let fake = FakeTwilio::start().await;
    let url = "https://hooks.weft.test/twilio/status?tenant=7";
    let hook = fake.signed_status(url, "SM123", DeliveryStatus::Delivered);
    let signature = hook.header(TWILIO_SIGNATURE_HEADER);
    let verifier = TwilioWebhook::new(&fake.auth_token());

    let event = verifier.verify(url, &hook.body, signature).expect("valid");
    assert_eq!(
        (event.provider_id.as_str(), event.status),
        ("SM123", DeliveryStatus::Delivered)
    );
    assert_eq!(event.event, "delivered");

    assert_eq!(
        verifier.verify(url, &tampered(hook.clone()), signature),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        verifier.verify(
            "https://hooks.weft.test/twilio/status",
            &hook.body,
            signature
        ),
        Err(WebhookError::BadSignature),
        "the query string is signed too"
    );
    let other = TwilioWebhook::new("another-token");
    assert_eq!(
        other.verify(url, &hook.body, signature),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        verifier.verify(url, &hook.body, None),
        Err(WebhookError::MissingSignature)
    );

    let failed = fake.signed_status(url, "SM124", DeliveryStatus::Failed);
    let event = verifier
        .verify(url, &failed.body, failed.header(TWILIO_SIGNATURE_HEADER))
        .expect("valid");
    assert_eq!(event.status, DeliveryStatus::Failed);
    assert_eq!(event.reason.as_deref(), Some("30008"));
}

#[tokio::test]
async fn sendgrid_signatures_and_timestamps_are_checked() {
    let fake = FakeSendGrid::start().await;
    let url = "https://hooks.weft.test/sendgrid";
    let events = [
        ("msg1", DeliveryStatus::Delivered),
        ("msg2", DeliveryStatus::Bounced),
        ("msg3", DeliveryStatus::Failed),
        ("msg4", DeliveryStatus::Complained),
    ];
    let hook = fake.signed_events(url, &events);
    let signature = hook.header(SENDGRID_SIGNATURE_HEADER);
    let timestamp = hook.header(SENDGRID_TIMESTAMP_HEADER);
    let verifier = SendGridWebhook::new(&fake.webhook_public_key()).expect("key");

    let parsed = verifier
        .verify(&hook.body, signature, timestamp)
        .expect("valid");
    let statuses: Vec<(&str, DeliveryStatus)> = parsed
        .iter()
        .map(|e| (e.provider_id.as_str(), e.status))
        .collect();
    assert_eq!(statuses, events);
    assert_eq!(parsed[1].event, "bounce");

    assert_eq!(
        verifier.verify(&tampered(hook.clone()), signature, timestamp),
        Err(WebhookError::BadSignature)
    );
    let later = (now() + 1).to_string();
    assert_eq!(
        verifier.verify(&hook.body, signature, Some(&later)),
        Err(WebhookError::BadSignature),
        "the timestamp is signed too"
    );
    let other_fake = FakeSendGrid::start().await;
    let other = SendGridWebhook::new(&other_fake.webhook_public_key()).expect("key");
    assert_eq!(
        other.verify(&hook.body, signature, timestamp),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        verifier.verify(&hook.body, None, timestamp),
        Err(WebhookError::MissingSignature)
    );

    let stale = fake.signed_events_at(url, &events, now() - HOUR);
    let result = verifier.verify(
        &stale.body,
        stale.header(SENDGRID_SIGNATURE_HEADER),
        stale.header(SENDGRID_TIMESTAMP_HEADER),
    );
    assert!(
        matches!(result, Err(WebhookError::Stale { .. })),
        "{result:?}"
    );
    let lenient = verifier
        .clone()
        .with_tolerance(Duration::from_secs(2 * HOUR));
    assert!(
        lenient
            .verify(
                &stale.body,
                stale.header(SENDGRID_SIGNATURE_HEADER),
                stale.header(SENDGRID_TIMESTAMP_HEADER),
            )
            .is_ok()
    );

    assert!(matches!(
        SendGridWebhook::new("bm90IGEga2V5"),
        Err(WebhookError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn mailgun_signatures_and_timestamps_are_checked() {
    let fake = FakeMailgun::start().await;
    let url = "https://hooks.weft.test/mailgun";
    let hook = fake.signed_event(url, "20240101.ABC@mg.weft.test", DeliveryStatus::Delivered);
    let verifier = MailgunWebhook::new(&fake.webhook_signing_key());

    let event = verifier
        .verify(&hook.body)
        .expect("valid")
        .expect("a delivery event");
    assert_eq!(event.provider_id, "20240101.ABC@mg.weft.test");
    assert_eq!(event.status, DeliveryStatus::Delivered);

    // Flip a bit inside the signed timestamp/token rather than anywhere:
    // Mailgun signs only those, not the event data.
    let mut forged: serde_json::Value = serde_json::from_slice(&hook.body).expect("json");
    forged["signature"]["token"] = serde_json::json!("0".repeat(50));
    let forged = forged.to_string().into_bytes();
    assert_eq!(verifier.verify(&forged), Err(WebhookError::BadSignature));

    let other = MailgunWebhook::new("another-key");
    assert_eq!(other.verify(&hook.body), Err(WebhookError::BadSignature));
    assert_eq!(verifier.verify(&hook.body), Err(WebhookError::Replayed));

    let stale = fake.signed_event_at(
        url,
        "x@mg.weft.test",
        DeliveryStatus::Delivered,
        now() - HOUR,
    );
    assert!(matches!(
        verifier.verify(&stale.body),
        Err(WebhookError::Stale { .. })
    ));

    let unsigned = br#"{"event-data": {"event": "delivered"}}"#;
    assert_eq!(
        verifier.verify(unsigned),
        Err(WebhookError::MissingSignature)
    );
    assert!(matches!(
        verifier.verify(b"not json"),
        Err(WebhookError::Malformed(_))
    ));
}
