use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use weft_stripe::fake::{FakeStripe, SignedEvent};
use weft_stripe::{DEFAULT_TOLERANCE_SECS, WebhookError, verify_webhook};

use crate::{WEBHOOK_SECRET, fake_and_client, now};

type Seen = Arc<Mutex<Vec<Result<String, WebhookError>>>>;

/// A receiver like the host's: verify, then answer 200 or 400.
async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type_is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let outcome = verify_webhook(
        &body,
        signature,
        WEBHOOK_SECRET,
        now(),
        DEFAULT_TOLERANCE_SECS,
    )
    .map(|event| event.kind);
    let status = match (&outcome, content_type_is_json) {
        (Ok(_), true) => StatusCode::OK,
        _ => StatusCode::BAD_REQUEST,
    };
    seen.lock().expect("not poisoned").push(outcome);
    status
}

async fn receiver() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/webhooks/stripe", post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!(
        "http://{}/webhooks/stripe",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    });
    (url, seen, task)
}

#[tokio::test]
async fn delivered_events_verify_at_the_receiver() {
    let (fake, client) = fake_and_client().await;
    let (url, seen, task) = receiver().await;
    let customer = client
        .create_customer::<&str, &str>("Acme", None, &[], "c")
        .await
        .expect("customer");

    let event = fake.subscription_event(
        "created",
        "sub_test_1",
        &customer,
        "price_1",
        Some("basic"),
        "active",
        now() + 86_400,
    );
    assert_eq!(event.deliver(&url).await.expect("delivered"), 200);
    let paid = fake.invoice_paid("sub_test_1", &customer, 500, "usd", now() + 86_400);
    assert_eq!(paid.deliver(&url).await.expect("delivered"), 200);

    // Tampered with on the way.
    let mut tampered = paid.clone();
    tampered.payload = String::from_utf8(tampered.payload)
        .expect("utf-8")
        .replace("\"amount_paid\": 500", "\"amount_paid\": 5")
        .into_bytes();
    assert_ne!(tampered.payload, paid.payload);
    assert_eq!(tampered.deliver(&url).await.expect("delivered"), 400);

    // Signed by another endpoint's secret.
    let other = FakeStripe::start(crate::SECRET_KEY, "whsec_someone_else")
        .await
        .expect("fake");
    let forged = other.subscription_event(
        "updated",
        "sub_test_1",
        &customer,
        "price_1",
        None,
        "active",
        now(),
    );
    assert_eq!(forged.deliver(&url).await.expect("delivered"), 400);

    // A genuine signature from an hour ago: a replay.
    let replay = SignedEvent {
        header: fake.sign(&event.payload, now() - 3600),
        ..event.clone()
    };
    assert_eq!(replay.deliver(&url).await.expect("delivered"), 400);

    assert_eq!(
        *seen.lock().expect("not poisoned"),
        vec![
            Ok("customer.subscription.created".to_owned()),
            Ok("invoice.paid".to_owned()),
            Err(WebhookError::BadSignature),
            Err(WebhookError::BadSignature),
            Err(WebhookError::Stale),
        ]
    );
    task.abort();
}

#[tokio::test]
async fn events_are_in_stripes_envelope() {
    let (fake, _) = fake_and_client().await;
    let event = fake.subscription_event(
        "created",
        "sub_test_2",
        "cus_x",
        "price_1",
        None,
        "trialing",
        now() + 10,
    );
    assert!(event.id.starts_with("evt_"), "{}", event.id);
    let envelope: serde_json::Value = serde_json::from_slice(&event.payload).expect("json");
    assert_eq!(envelope["id"], event.id.as_str());
    assert_eq!(envelope["object"], "event");
    assert!(envelope["api_version"].is_string());
    assert!(envelope["created"].is_i64());
    assert_eq!(envelope["livemode"], false);
    assert_eq!(envelope["type"], "customer.subscription.created");
    assert_eq!(envelope["data"]["object"]["object"], "subscription");
    assert!(envelope["data"].get("previous_attributes").is_none());
    assert!(envelope["request"].is_object());
    assert_eq!(envelope["pending_webhooks"], 1);
    let t: i64 = event
        .header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t=");
    assert!((now() - t).abs() < 5);
    assert!(event.header.contains(",v1="));
    assert_eq!(fake.sign(&event.payload, t), event.header);
}
