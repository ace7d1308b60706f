//! `FcmSender` against `FakeFcm`, including the OAuth token exchange.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weft_msg_wire::fake::OTHER_TEST_RSA_KEY_PEM;
use weft_msg_wire::{FakeFcm, FcmConfig, FcmSender, Push, PushSender, ServiceAccount};

use super::{failed, install_ring};

fn push(token: &str) -> Push {
    Push {
        token: token.into(),
        title: "Order shipped".into(),
        body: "Your order #42 is on its way".into(),
        data: BTreeMap::from([("order_id".into(), "42".into())]),
    }
}

async fn setup() -> (FakeFcm, FcmSender) {
    install_ring();
    let fake = FakeFcm::start().await;
    let account = ServiceAccount::from_json(&fake.service_account_json()).expect("json");
    let sender =
        FcmSender::new(FcmConfig::new(account).with_base_url(fake.base_url())).expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn sends_the_v1_message_and_returns_its_name() {
    let (fake, sender) = setup().await;
    let sent = sender.send(&push("device-1")).await.expect("sent");
    assert!(
        sent.provider_id.starts_with("projects/weft-fake/messages/"),
        "{}",
        sent.provider_id
    );
    let accepted = fake.accepted();
    assert_eq!(accepted[0].provider_id, sent.provider_id);
    assert_eq!(accepted[0].message, push("device-1"));
}

#[tokio::test]
async fn one_token_serves_many_sends() {
    let (fake, sender) = setup().await;
    let sender: Arc<dyn PushSender> = Arc::new(sender);
    let mut tasks = Vec::new();
    for n in 0..5 {
        let sender = Arc::clone(&sender);
        tasks.push(tokio::spawn(async move {
            sender.send_push(&push(&format!("device-{n}"))).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("sent");
    }
    sender.send_push(&push("device-9")).await.expect("sent");
    assert_eq!(fake.accepted_count(), 6);
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced() {
    install_ring();
    let fake = FakeFcm::start()
        .await
        .with_token_lifetime(Duration::from_secs(30));
    let sender = FcmSender::new(fake.config()).expect("sender");
    for n in 0..3 {
        sender
            .send(&push(&format!("device-{n}")))
            .await
            .expect("sent");
    }
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn a_revoked_token_is_transient_and_then_replaced() {
    let (fake, sender) = setup().await;
    sender.send(&push("device-1")).await.expect("sent");
    fake.revoke_tokens();
    let error = failed(sender.send(&push("device-1")).await);
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.code(), Some("UNAUTHENTICATED"));
    sender.send(&push("device-1")).await.expect("fresh token");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_key_the_fake_does_not_trust_is_permanent() {
    let (fake, _) = setup().await;
    let json = fake.service_account_json_with_key(OTHER_TEST_RSA_KEY_PEM);
    let account = ServiceAccount::from_json(&json).expect("json");
    let sender =
        FcmSender::new(FcmConfig::new(account).with_base_url(fake.base_url())).expect("sender");
    let error = failed(sender.send(&push("device-1")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.code(), Some("invalid_grant"));
    assert!(error.to_string().contains("Invalid JWT Signature"));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_malformed_key_is_refused_at_construction() {
    let (fake, _) = setup().await;
    let json = fake.service_account_json_with_key("not a key");
    let account = ServiceAccount::from_json(&json).expect("json");
    assert!(!failed(FcmSender::new(FcmConfig::new(account))).is_transient());
    assert!(!failed(ServiceAccount::from_json("{}")).is_transient());
}

#[tokio::test]
async fn unavailable_and_internal_are_transient() {
    let (fake, sender) = setup().await;
    for status in [500, 503, 429] {
        fake.fail_next(1, status);
        let error = failed(sender.send(&push("device-1")).await);
        assert!(error.is_transient(), "{status}: {error}");
        assert_eq!(error.status(), Some(status));
    }
    assert_eq!(fake.token_requests(), 1);
    sender.send(&push("device-1")).await.expect("recovered");
}

#[tokio::test]
async fn unregistered_and_invalid_argument_are_permanent() {
    let (fake, sender) = setup().await;
    fake.refuse_recipient("stale-device");
    let error = failed(sender.send(&push("stale-device")).await);
    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.code(), Some("UNREGISTERED"));

    let mut reserved = push("device-1");
    reserved.data.insert("google.c.a.e".into(), "1".into());
    let error = failed(sender.send(&reserved).await);
    assert!(!error.is_transient());
    assert_eq!(error.code(), Some("INVALID_ARGUMENT"));
}

#[tokio::test]
async fn a_wrong_project_is_permanent() {
    let (fake, _) = setup().await;
    let sender = FcmSender::new(fake.config().with_project_id("someone-else")).expect("sender");
    let error = failed(sender.send(&push("device-1")).await);
    assert!(!error.is_transient());
    assert_eq!(error.status(), Some(403));
}
