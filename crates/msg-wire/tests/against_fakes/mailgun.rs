//! `MailgunSender` against `FakeMailgun`.

use weft_msg_wire::{FakeMailgun, MailgunSender};

use super::{email, failed, install_ring};

async fn setup() -> (FakeMailgun, MailgunSender) {
    install_ring();
    let fake = FakeMailgun::start()
        .await
        .with_api_key("key-right")
        .with_domain("mg.weft.test");
    let sender = MailgunSender::new(fake.config()).expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn sends_form_fields_and_returns_the_id() {
    let (fake, sender) = setup().await;
    let sent = sender.send(&email("ada@example.com")).await.expect("sent");
    assert!(
        sent.provider_id.ends_with("@mg.weft.test"),
        "{}",
        sent.provider_id
    );
    assert!(!sent.provider_id.starts_with('<'));

    let accepted = fake.accepted();
    assert_eq!(accepted[0].provider_id, sent.provider_id);
    assert_eq!(accepted[0].message, email("ada@example.com"));
    assert!(
        accepted[0]
            .raw
            .contains("h%3AList-Unsubscribe-Post=List-Unsubscribe%3DOne-Click")
    );
    assert!(accepted[0].raw.contains("h%3AReply-To=support%40weft.test"));
}

#[tokio::test]
async fn a_wrong_key_or_domain_is_permanent() {
    let (fake, _) = setup().await;
    let mut config = fake.config();
    config.api_key = "key-wrong".into();
    let error = failed(
        MailgunSender::new(config)
            .expect("sender")
            .send(&email("ada@example.com"))
            .await,
    );
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(401));
    assert!(error.to_string().contains("Forbidden"));

    let mut config = fake.config();
    config.domain = "other.test".into();
    let error = failed(
        MailgunSender::new(config)
            .expect("sender")
            .send(&email("ada@example.com"))
            .await,
    );
    assert_eq!(error.status(), Some(404));
    assert!(error.to_string().contains("Domain not found"));

    let mut config = fake.config();
    config.domain = "bad/domain".into();
    assert!(!failed(MailgunSender::new(config)).is_transient());
}

#[tokio::test]
async fn server_errors_are_transient() {
    let (fake, sender) = setup().await;
    fake.fail_next(2, 503);
    for _ in 0..2 {
        let error = failed(sender.send(&email("ada@example.com")).await);
        assert!(error.is_transient(), "{error}");
        assert_eq!(error.status(), Some(503));
    }
    sender
        .send(&email("ada@example.com"))
        .await
        .expect("recovered");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent() {
    let (fake, sender) = setup().await;
    fake.refuse_recipient("gone@example.com");
    let error = failed(sender.send(&email("gone@example.com")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(400));
    assert!(error.to_string().contains("suppression list"));
}
