//! `TwilioSender` against `FakeTwilio`.

use std::time::Duration;

use weft_msg_wire::{FakeTwilio, Sms, TwilioSender};

use super::{failed, install_ring};

fn sms(to: &str) -> Sms {
    Sms {
        from: "+15557654321".into(),
        to: to.into(),
        body: "Your code is 123456".into(),
    }
}

async fn setup() -> (FakeTwilio, TwilioSender) {
    install_ring();
    let fake = FakeTwilio::start().await;
    let sender = TwilioSender::new(
        fake.config()
            .with_status_callback("https://hooks.weft.test/twilio/status"),
    )
    .expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn sends_the_form_and_returns_the_sid() {
    let (fake, sender) = setup().await;
    let sent = sender.send(&sms("+15551234567")).await.expect("sent");
    assert!(sent.provider_id.starts_with("SM") && sent.provider_id.len() == 34);
    let accepted = fake.accepted();
    assert_eq!(accepted[0].provider_id, sent.provider_id);
    assert_eq!(accepted[0].message, sms("+15551234567"));
    assert!(
        accepted[0]
            .raw
            .contains("StatusCallback=https%3A%2F%2Fhooks.weft.test%2Ftwilio%2Fstatus")
    );
}

#[tokio::test]
async fn a_messaging_service_stands_in_for_from() {
    let (fake, _) = setup().await;
    let service = format!("MG{}", "0123456789abcdef".repeat(2));
    let sender =
        TwilioSender::new(fake.config().with_messaging_service(service.clone())).expect("sender");
    let mut message = sms("+15551234567");
    message.from = String::new();
    sender.send(&message).await.expect("sent");
    let accepted = &fake.accepted()[0];
    assert_eq!(accepted.message.from, "");
    assert!(
        accepted
            .raw
            .contains(&format!("MessagingServiceSid={service}"))
    );

    let without = TwilioSender::new(fake.config()).expect("sender");
    assert!(!failed(without.send(&message).await).is_transient());
}

#[tokio::test]
async fn wrong_credentials_are_permanent() {
    let (fake, _) = setup().await;
    let mut config = fake.config();
    config.auth_token = "wrong".into();
    let error = failed(
        TwilioSender::new(config)
            .expect("sender")
            .send(&sms("+15551234567"))
            .await,
    );
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.code(), Some("20003"));
}

#[tokio::test]
async fn an_invalid_to_is_permanent_21211() {
    let (fake, sender) = setup().await;
    let error = failed(sender.send(&sms("555-1234")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.code(), Some("21211"));
    assert!(error.to_string().contains("not a valid phone number"));
    assert_eq!(fake.accepted_count(), 0);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let (fake, sender) = setup().await;
    fake.fail_next(1, 500);
    let error = failed(sender.send(&sms("+15551234567")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.code(), Some("20500"));
    fake.fail_next(1, 429);
    let error = failed(sender.send(&sms("+15551234567")).await);
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    sender.send(&sms("+15551234567")).await.expect("recovered");
}

#[tokio::test]
async fn an_unsubscribed_recipient_is_permanent_21610() {
    let (fake, sender) = setup().await;
    fake.refuse_recipient("+15550000000");
    let error = failed(sender.send(&sms("+15550000000")).await);
    assert!(!error.is_transient());
    assert_eq!(error.code(), Some("21610"));
}
