//! `SendGridSender` against `FakeSendGrid`.

use std::time::Duration;

use serde_json::Value;
use weft_msg_wire::{FakeSendGrid, SendGridSender};

use super::{email, failed, install_ring};

async fn setup() -> (FakeSendGrid, SendGridSender) {
    install_ring();
    let fake = FakeSendGrid::start().await.with_api_key("SG.right");
    let sender = SendGridSender::new(fake.config()).expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn sends_the_v3_body_and_returns_the_message_id() {
    let (fake, sender) = setup().await;
    let sent = sender
        .send(&email("Ada <ada@example.com>"))
        .await
        .expect("sent");

    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].provider_id, sent.provider_id);
    assert_eq!(sent.provider_id.len(), 22);
    let decoded = &accepted[0].message;
    let mut expected = email("Ada <ada@example.com>");
    expected.headers.sort();
    assert_eq!(decoded, &expected);

    let raw: Value = serde_json::from_str(&accepted[0].raw).expect("json");
    assert_eq!(raw["content"][0]["type"], "text/plain");
    assert_eq!(raw["content"][1]["type"], "text/html");
    assert_eq!(raw["personalizations"][0]["to"][0]["name"], "Ada");
    assert_eq!(raw["reply_to"]["email"], "support@weft.test");
    assert_eq!(
        raw["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );
}

#[tokio::test]
async fn an_html_only_email_is_accepted() {
    let (fake, sender) = setup().await;
    let mut email = email("ada@example.com");
    email.text = None;
    sender.send(&email).await.expect("sent");
    assert_eq!(fake.accepted()[0].message.text, None);
}

#[tokio::test]
async fn a_wrong_key_is_permanent() {
    let (fake, right) = setup().await;
    let mut config = fake.config();
    config.api_key = "SG.wrong".into();
    let wrong_key = SendGridSender::new(config).expect("sender");
    let error = failed(wrong_key.send(&email("ada@example.com")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(401));
    assert!(error.to_string().contains("authorization grant is invalid"));
    assert!(!error.to_string().contains("SG.wrong"));
    right
        .send(&email("ada@example.com"))
        .await
        .expect("the right key works");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let (fake, sender) = setup().await;
    fake.fail_next(1, 500);
    let error = failed(sender.send(&email("ada@example.com")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(500));

    fake.fail_next(1, 429);
    let error = failed(sender.send(&email("ada@example.com")).await);
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));

    sender
        .send(&email("ada@example.com"))
        .await
        .expect("recovered");
    assert_eq!((fake.calls(), fake.accepted_count()), (3, 1));
}

#[tokio::test]
async fn a_refused_recipient_is_permanent() {
    let (fake, sender) = setup().await;
    fake.refuse_recipient("gone@example.com");
    let error = failed(sender.send(&email("Gone <gone@example.com>")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.code(), Some("personalizations.0.to.0.email"));
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    install_ring();
    let fake = FakeSendGrid::start().await;
    let config = fake.config();
    drop(fake);
    let sender = SendGridSender::new(config).expect("sender");
    let error = failed(sender.send(&email("ada@example.com")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), None);
}
