use weft_stripe::fake::FakePrice;
use weft_stripe::{
    CheckoutMode, CheckoutRequest, DEFAULT_TOLERANCE_SECS, Error, StripeClient, SubscriptionStatus,
    verify_webhook,
};

use crate::{WEBHOOK_SECRET, fake_and_client, get, now};

#[tokio::test]
async fn creating_a_customer_is_idempotent() {
    let (fake, client) = fake_and_client().await;
    let metadata = [("tenant", "t_1")];
    let id = client
        .create_customer("Acme", Some("billing@acme.test"), &metadata, "customer-t_1")
        .await
        .expect("created");
    assert!(id.starts_with("cus_"), "{id}");
    let again = client
        .create_customer("Acme", Some("billing@acme.test"), &metadata, "customer-t_1")
        .await
        .expect("replayed");
    assert_eq!(again, id);
    assert_eq!(fake.customers().len(), 1);
    let customer = &fake.customers()[0];
    assert_eq!(customer.name.as_deref(), Some("Acme"));
    assert_eq!(customer.email.as_deref(), Some("billing@acme.test"));
    assert_eq!(
        customer.metadata.get("tenant").map(String::as_str),
        Some("t_1")
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/customers");
        assert_eq!(request.idempotency_key.as_deref(), Some("customer-t_1"));
        assert_eq!(request.field("name"), Some("Acme"));
        assert_eq!(request.field("email"), Some("billing@acme.test"));
        assert_eq!(request.field("metadata[tenant]"), Some("t_1"));
    }

    // The same key with other parameters is refused, as Stripe does.
    let err = client
        .create_customer("Other", None, &metadata, "customer-t_1")
        .await
        .expect_err("key reuse");
    assert!(
        matches!(&err, Error::Api { status: 400, kind, .. } if kind == "idempotency_error"),
        "{err:?}"
    );

    let (status, body) = get(&fake, &format!("/v1/customers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["object"], "customer");
    let (status, body) = get(&fake, "/v1/customers/cus_missing").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_echoing_it() {
    let (fake, _) = fake_and_client().await;
    let wrong = StripeClient::new("sk_test_wrong_key", fake.base_url()).expect("client builds");
    let err = wrong
        .create_customer::<&str, &str>("Acme", None, &[], "k1")
        .await
        .expect_err("unauthorized");
    assert!(
        matches!(&err, Error::Api { status: 401, kind, .. } if kind == "invalid_request_error"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("sk_test_wrong_key"));
    assert!(!format!("{err:?}").contains("sk_test_wrong_key"));
    assert!(fake.customers().is_empty());

    let response = reqwest::Client::new()
        .get(format!("{}/v1/customers/cus_1", fake.base_url()))
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn a_payment_checkout_sends_inline_price_data() {
    let (fake, client) = fake_and_client().await;
    let customer = client
        .create_customer::<&str, &str>("Acme", None, &[], "c1")
        .await
        .expect("customer");
    let request = CheckoutRequest {
        customer: customer.clone(),
        mode: CheckoutMode::Payment {
            amount_minor: 1500,
            currency: "USD".into(),
            product_name: "Weft credits".into(),
        },
        success_url: "https://weft.test/billing/done?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://weft.test/billing".into(),
        metadata: vec![
            ("tenant".into(), "t_1".into()),
            ("purpose".into(), "top_up".into()),
        ],
        client_reference_id: Some("topup-42".into()),
    };
    let session = client
        .create_checkout_session(&request, "checkout-42")
        .await
        .expect("session");
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert!(
        session
            .url
            .starts_with(&format!("{}/c/pay/", fake.base_url())),
        "{}",
        session.url
    );
    let replay = client
        .create_checkout_session(&request, "checkout-42")
        .await
        .expect("replay");
    assert_eq!(replay, session);

    let sent = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/checkout/sessions")
        .expect("sent");
    assert_eq!(sent.idempotency_key.as_deref(), Some("checkout-42"));
    for (key, value) in [
        ("mode", "payment"),
        ("customer", customer.as_str()),
        (
            "success_url",
            "https://weft.test/billing/done?session={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://weft.test/billing"),
        ("client_reference_id", "topup-42"),
        ("metadata[tenant]", "t_1"),
        ("metadata[purpose]", "top_up"),
        ("payment_intent_data[metadata][tenant]", "t_1"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "1500"),
        (
            "line_items[0][price_data][product_data][name]",
            "Weft credits",
        ),
        ("line_items[0][quantity]", "1"),
    ] {
        assert_eq!(
            sent.field(key),
            Some(value),
            "field {key} in {:?}",
            sent.form
        );
    }
    assert_eq!(sent.field("line_items[0][price]"), None);

    let page = reqwest::get(&session.url).await.expect("page");
    assert_eq!(page.status().as_u16(), 200);

    let event = fake.complete_checkout(&session.id).expect("completes");
    let verified = verify_webhook(
        &event.payload,
        &event.header,
        WEBHOOK_SECRET,
        now(),
        DEFAULT_TOLERANCE_SECS,
    )
    .expect("genuine");
    assert_eq!(verified.id, event.id);
    assert_eq!(verified.kind, "checkout.session.completed");
    let done = verified.checkout_completed().expect("completed session");
    assert_eq!(done.session_id, session.id);
    assert_eq!(done.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(done.mode, "payment");
    assert_eq!(done.amount_total, Some(1500));
    assert_eq!(done.currency.as_deref(), Some("usd"));
    assert_eq!(done.subscription, None);
    assert_eq!(
        done.metadata.get("purpose").map(String::as_str),
        Some("top_up")
    );
    assert_eq!(done.client_reference_id.as_deref(), Some("topup-42"));
    assert_eq!(done.payment_status, "paid");

    let (status, body) = get(&fake, &format!("/v1/checkout/sessions/{}", session.id)).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "complete");
    assert!(
        body["payment_intent"]
            .as_str()
            .is_some_and(|pi| pi.starts_with("pi_"))
    );
    let again = fake
        .complete_checkout(&session.id)
        .expect_err("already complete");
    assert!(matches!(again, Error::Api { status: 400, .. }), "{again:?}");
    assert!(matches!(
        fake.complete_checkout("cs_test_missing"),
        Err(Error::Api { status: 404, .. })
    ));
}

#[tokio::test]
async fn a_subscription_checkout_names_the_price_and_starts_a_subscription() {
    let (fake, client) = fake_and_client().await;
    fake.add_price(FakePrice {
        id: "price_pro_monthly".into(),
        lookup_key: Some("pro_monthly".into()),
        unit_amount: 2000,
        currency: "usd".into(),
        interval: Some("month".into()),
    });
    let customer = client
        .create_customer::<&str, &str>("Acme", None, &[], "c1")
        .await
        .expect("customer");
    let request = CheckoutRequest {
        customer: customer.clone(),
        mode: CheckoutMode::Subscription {
            price: "price_pro_monthly".into(),
        },
        success_url: "https://weft.test/ok".into(),
        cancel_url: "https://weft.test/no".into(),
        metadata: vec![("tenant".into(), "t_9".into())],
        client_reference_id: None,
    };
    let session = client
        .create_checkout_session(&request, "sub-t_9")
        .await
        .expect("session");
    let sent = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/checkout/sessions")
        .expect("sent");
    for (key, value) in [
        ("mode", "subscription"),
        ("customer", customer.as_str()),
        ("line_items[0][price]", "price_pro_monthly"),
        ("line_items[0][quantity]", "1"),
        ("metadata[tenant]", "t_9"),
        ("subscription_data[metadata][tenant]", "t_9"),
    ] {
        assert_eq!(
            sent.field(key),
            Some(value),
            "field {key} in {:?}",
            sent.form
        );
    }
    assert!(sent.form.iter().all(|(k, _)| !k.contains("price_data")));
    assert_eq!(sent.field("client_reference_id"), None);

    let event = fake.complete_checkout(&session.id).expect("completes");
    let done = verify_webhook(&event.payload, &event.header, WEBHOOK_SECRET, now(), 300)
        .expect("genuine")
        .checkout_completed()
        .expect("completed");
    assert_eq!(done.mode, "subscription");
    assert_eq!(done.amount_total, Some(2000));
    let subscription = done.subscription.expect("a subscription");
    assert!(subscription.starts_with("sub_"), "{subscription}");
    let (status, body) = get(&fake, &format!("/v1/subscriptions/{subscription}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "active");
    assert_eq!(body["metadata"]["tenant"], "t_9");
    assert_eq!(
        body["items"]["data"][0]["price"]["lookup_key"],
        "pro_monthly"
    );

    let period_end = now() + 30 * 86_400;
    let update = fake.subscription_event(
        "updated",
        &subscription,
        &customer,
        "price_pro_monthly",
        Some("pro_monthly"),
        "past_due",
        period_end,
    );
    let verified = verify_webhook(&update.payload, &update.header, WEBHOOK_SECRET, now(), 300)
        .expect("genuine");
    assert_eq!(verified.kind, "customer.subscription.updated");
    let change = verified.subscription().expect("a subscription change");
    assert_eq!(change.id, subscription);
    assert_eq!(change.customer, customer);
    assert_eq!(change.status, SubscriptionStatus::PastDue);
    assert_eq!(change.price_ids, vec!["price_pro_monthly".to_owned()]);
    assert_eq!(change.lookup_keys, vec!["pro_monthly".to_owned()]);
    assert_eq!(change.current_period_end, Some(period_end));
    assert!(!change.cancel_at_period_end);
    assert_eq!(
        change.metadata.get("tenant").map(String::as_str),
        Some("t_9")
    );
    let envelope: serde_json::Value = serde_json::from_slice(&update.payload).expect("json");
    assert_eq!(envelope["data"]["previous_attributes"]["status"], "active");

    let deleted = fake.subscription_event(
        "deleted",
        &subscription,
        &customer,
        "price_pro_monthly",
        None,
        "canceled",
        period_end,
    );
    let change = verify_webhook(
        &deleted.payload,
        &deleted.header,
        WEBHOOK_SECRET,
        now(),
        300,
    )
    .expect("genuine")
    .subscription()
    .expect("a subscription change");
    assert_eq!(change.status, SubscriptionStatus::Canceled);
    assert!(change.lookup_keys.is_empty());

    let paid = fake.invoice_paid(&subscription, &customer, 2000, "usd", period_end);
    let invoice = verify_webhook(&paid.payload, &paid.header, WEBHOOK_SECRET, now(), 300)
        .expect("genuine")
        .invoice()
        .expect("an invoice");
    assert!(invoice.id.starts_with("in_"), "{}", invoice.id);
    assert_eq!(invoice.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(invoice.subscription.as_deref(), Some(subscription.as_str()));
    assert_eq!(invoice.status.as_deref(), Some("paid"));
    assert_eq!(invoice.amount_paid, 2000);
    assert_eq!(invoice.period_end, Some(period_end));

    let failed = fake.invoice_payment_failed(&subscription, &customer, 2000, "usd", period_end);
    let invoice = verify_webhook(&failed.payload, &failed.header, WEBHOOK_SECRET, now(), 300)
        .expect("genuine")
        .invoice()
        .expect("an invoice");
    assert_eq!(invoice.status.as_deref(), Some("open"));
    assert_eq!(invoice.amount_paid, 0);
    assert_eq!(invoice.amount_due, 2000);
}

#[tokio::test]
async fn checkout_for_an_unknown_customer_is_refused() {
    let (_fake, client) = fake_and_client().await;
    let request = CheckoutRequest {
        customer: "cus_nobody".into(),
        mode: CheckoutMode::Subscription {
            price: "price_x".into(),
        },
        success_url: "https://weft.test/ok".into(),
        cancel_url: "https://weft.test/no".into(),
        metadata: Vec::new(),
        client_reference_id: None,
    };
    let err = client
        .create_checkout_session(&request, "k")
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::Api { status: 400, code: Some(code), .. } if code == "resource_missing"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_meter_event_is_recorded_once_however_often_it_is_sent() {
    let (fake, client) = fake_and_client().await;
    let at = now() - 60;
    client
        .send_meter_event("weft_tokens", "cus_A", 120, "usage-t1-0001", at)
        .await
        .expect("sent");
    // An exact retry: answered from the idempotency cache.
    client
        .send_meter_event("weft_tokens", "cus_A", 120, "usage-t1-0001", at)
        .await
        .expect("retried");
    // The same fact re-derived with other values: Stripe's identifier check
    // refuses it, which means it is already recorded.
    client
        .send_meter_event("weft_tokens", "cus_A", 999, "usage-t1-0001", at + 5)
        .await
        .expect("duplicate");
    assert_eq!(
        fake.meter_events(),
        vec![weft_stripe::fake::MeterEvent {
            event_name: "weft_tokens".into(),
            customer: "cus_A".into(),
            value: 120,
            identifier: "usage-t1-0001".into(),
            timestamp: at,
        }]
    );

    let sent: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/billing/meter_events")
        .collect();
    assert_eq!(sent.len(), 3);
    for request in &sent {
        assert_eq!(request.method, "POST");
        assert_eq!(request.field("event_name"), Some("weft_tokens"));
        assert_eq!(request.field("payload[stripe_customer_id]"), Some("cus_A"));
        assert_eq!(request.field("identifier"), Some("usage-t1-0001"));
        assert!(request.idempotency_key.is_some());
    }
    assert_eq!(sent[0].field("payload[value]"), Some("120"));
    assert_eq!(sent[0].field("timestamp"), Some(at.to_string().as_str()));
    assert_eq!(sent[0].idempotency_key, sent[1].idempotency_key);
    assert_ne!(sent[0].idempotency_key, sent[2].idempotency_key);

    client
        .send_meter_event("weft_tokens", "cus_A", 7, "usage-t1-0002", at)
        .await
        .expect("sent");
    assert_eq!(fake.meter_events().len(), 2);

    // Other refusals are still errors.
    let err = client
        .send_meter_event("weft_tokens", "cus_A", 7, "usage-t1-0003", at - 40 * 86_400)
        .await
        .expect_err("too old");
    assert!(matches!(err, Error::Api { status: 400, .. }), "{err:?}");
    assert_eq!(fake.meter_events().len(), 2);
}
