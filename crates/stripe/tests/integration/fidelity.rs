//! The fake's objects decode with async-stripe's own typed models (the ones
//! generated from Stripe's OpenAPI spec for the pinned API version), so they
//! carry every field Stripe's do.

use weft_stripe::fake::FakePrice;
use weft_stripe::{CheckoutMode, CheckoutRequest};

use crate::{fake_and_client, get, now};

fn decode<T: miniserde::Deserialize>(value: &serde_json::Value, what: &str) -> T {
    let text = serde_json::to_string(value).expect("serializable");
    miniserde::json::from_str(&text).unwrap_or_else(|_| panic!("{what} does not decode: {text}"))
}

#[tokio::test]
async fn fake_objects_decode_as_stripes_models() {
    let (fake, client) = fake_and_client().await;
    fake.add_price(FakePrice {
        id: "price_team".into(),
        lookup_key: Some("team_yearly".into()),
        unit_amount: 12_000,
        currency: "eur".into(),
        interval: Some("year".into()),
    });
    let customer = client
        .create_customer("Acme", Some("a@acme.test"), &[("tenant", "t")], "c")
        .await
        .expect("customer");
    let (_, body) = get(&fake, &format!("/v1/customers/{customer}")).await;
    let typed: stripe_shared::Customer = decode(&body, "customer");
    assert_eq!(typed.email.as_deref(), Some("a@acme.test"));

    let request = CheckoutRequest {
        customer: customer.clone(),
        mode: CheckoutMode::Subscription {
            price: "price_team".into(),
        },
        success_url: "https://weft.test/ok".into(),
        cancel_url: "https://weft.test/no".into(),
        metadata: vec![("tenant".into(), "t".into())],
        client_reference_id: None,
    };
    let session = client
        .create_checkout_session(&request, "s")
        .await
        .expect("session");
    let completed = fake.complete_checkout(&session.id).expect("completed");
    let subscription = fake
        .subscription_event(
            "updated",
            "sub_t",
            &customer,
            "price_team",
            None,
            "active",
            now() + 99,
        )
        .payload;
    let invoice = fake
        .invoice_paid("sub_t", &customer, 12_000, "eur", now())
        .payload;
    for payload in [&completed.payload, &subscription, &invoice] {
        let text = std::str::from_utf8(payload).expect("utf-8");
        let event: Result<stripe_shared::Event, _> = miniserde::json::from_str(text);
        assert!(event.is_ok(), "event envelope does not decode: {text}");
        let envelope: serde_json::Value = serde_json::from_str(text).expect("json");
        let object = &envelope["data"]["object"];
        match object["object"].as_str() {
            Some("checkout.session") => {
                let typed: stripe_shared::CheckoutSession = decode(object, "checkout session");
                assert!(typed.subscription.is_some());
            }
            Some("subscription") => {
                let typed: stripe_shared::Subscription = decode(object, "subscription");
                assert_eq!(typed.items.data.len(), 1);
            }
            Some("invoice") => {
                let typed: stripe_shared::Invoice = decode(object, "invoice");
                assert_eq!(typed.amount_paid, 12_000);
            }
            other => panic!("unexpected object {other:?}"),
        }
    }
    let first = fake.complete_checkout(&session.id);
    assert!(first.is_err());
    let subscription_id = fake
        .object(&session.id)
        .and_then(|s| s["subscription"].as_str().map(str::to_owned))
        .expect("subscription id");
    let (_, body) = get(&fake, &format!("/v1/subscriptions/{subscription_id}")).await;
    let typed: stripe_shared::Subscription = decode(&body, "subscription");
    assert_eq!(
        typed.items.data[0].current_period_end - typed.items.data[0].current_period_start,
        365 * 86_400
    );
}
