//! Stripe through HTTP, against `weft-stripe`'s fake Stripe on loopback:
//! checkout → signed webhook → credits once however often it is delivered;
//! forged signatures; the subscription lifecycle moving the plan; usage
//! reported as meter events with stable identifiers.

use reqwest::StatusCode;
use serde_json::json;
use weft::config::Config;
use weft_llm_wire::Usage;
use weft_llm_wire::fake::{FakeLlm, Script};
use weft_stripe::fake::{FakePrice, FakeStripe};

use crate::common::{self, Engine, Server, TestTenant, code};

const SECRET_KEY: &str = "sk_test_weft";
const WEBHOOK_SECRET: &str = "whsec_weft_test";

async fn start(engine: Engine) -> Option<(Server, FakeStripe, FakeLlm)> {
    let stripe = FakeStripe::start(SECRET_KEY, WEBHOOK_SECRET)
        .await
        .expect("fake stripe");
    let llm = FakeLlm::start().await;
    let (stripe_url, llm_url) = (stripe.base_url().to_owned(), llm.base_url());
    let server = common::start_with(engine, move |c: &mut Config| {
        c.billing.stripe.secret_key = SECRET_KEY.into();
        c.billing.stripe.webhook_secret = WEBHOOK_SECRET.into();
        c.billing.stripe.base_url = stripe_url;
        for plan in &mut c.billing.plans {
            plan.stripe_price = Some(format!("price_{}", plan.id));
        }
        for p in &mut c.llm.providers {
            p.base_url = llm_url.clone();
            p.api_key = "key".into();
        }
    })
    .await?;
    Some((server, stripe, llm))
}

macro_rules! stripe_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some((server, stripe, llm)) = start(Engine::Sqlite).await {
                    ($body)(&server, &stripe, &llm).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((server, stripe, llm)) = start(Engine::Postgres).await {
                    ($body)(&server, &stripe, &llm).await;
                    server.stop().await;
                }
            }
        }
    };
}

fn webhook_url(s: &Server) -> String {
    format!("{}/v1/billing/stripe/webhook", s.base)
}

async fn account(s: &Server, t: &TestTenant) -> serde_json::Value {
    let (status, body) = s.get("/v1/billing", Some(&t.admin_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

stripe_test!(
    a_paid_checkout_credits_once_however_often_delivered,
    async |s: &Server, stripe: &FakeStripe, _llm: &FakeLlm| {
        let t = s.tenant("buyer").await;
        let (status, session) = s
            .post(
                "/v1/billing/checkout",
                Some(&t.admin_token),
                json!({"package": "basic"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let id = session["id"].as_str().expect("session id");
        assert!(id.starts_with("cs_test_"), "{session}");
        assert!(
            session["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http"))
        );
        // Stripe was asked for the package's price, for the tenant's customer.
        let created = stripe
            .requests()
            .into_iter()
            .find(|r| r.path == "/v1/checkout/sessions")
            .expect("checkout request");
        assert_eq!(
            created.field("line_items[0][price_data][unit_amount]"),
            Some("4500")
        );
        assert_eq!(created.field("mode"), Some("payment"));
        assert!(created.idempotency_key.is_some());
        assert_eq!(stripe.customers().len(), 1);

        let event = stripe.complete_checkout(id).expect("completed");
        for _ in 0..3 {
            let status = event.deliver(&webhook_url(s)).await.expect("delivered");
            assert_eq!(status, 200);
        }
        let body = account(s, &t).await;
        assert_eq!(body["balance"], "5500", "credited once: {body}");
        let (_, ledger) = s.get("/v1/billing/ledger", Some(&t.admin_token)).await;
        let entries = ledger["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "{ledger}");
        assert_eq!(entries[0]["kind"], "purchase");
        assert_eq!(ledger["balance"], ledger["sum_of_entries"]);

        // A second checkout for the same tenant reuses its customer.
        let (status, _) = s
            .post(
                "/v1/billing/checkout",
                Some(&t.admin_token),
                json!({"package": "starter"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(stripe.customers().len(), 1);
        // Bad requests.
        for (body, status, expected) in [
            (
                json!({"package": "platinum"}),
                StatusCode::NOT_FOUND,
                "unknown_package",
            ),
            (
                json!({"package": "basic", "plan": "partner"}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (json!({}), StatusCode::BAD_REQUEST, "invalid_input"),
        ] {
            let (got, answer) = s
                .post("/v1/billing/checkout", Some(&t.admin_token), body)
                .await;
            assert_eq!((got, code(&answer)), (status, expected), "{answer}");
        }
    }
);

stripe_test!(
    a_forged_or_stale_signature_is_refused_and_credits_nothing,
    async |s: &Server, stripe: &FakeStripe, _llm: &FakeLlm| {
        let t = s.tenant("forged").await;
        let (_, session) = s
            .post(
                "/v1/billing/checkout",
                Some(&t.admin_token),
                json!({"package": "pro"}),
            )
            .await;
        let event = stripe
            .complete_checkout(session["id"].as_str().expect("id"))
            .expect("completed");
        let send = |payload: Vec<u8>, header: String| {
            let client = s.client.clone();
            let url = webhook_url(s);
            async move {
                let response = client
                    .post(url)
                    .header("stripe-signature", header)
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                    .expect("post");
                let status = response.status();
                (
                    status,
                    response
                        .json::<serde_json::Value>()
                        .await
                        .unwrap_or_default(),
                )
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let forger = FakeStripe::start(SECRET_KEY, "whsec_someone_else")
            .await
            .expect("fake");
        let cases = [
            // Signed with another secret.
            (event.payload.clone(), forger.sign(&event.payload, now)),
            // The real signature over a tampered payload.
            (
                String::from_utf8_lossy(&event.payload)
                    .replacen("\"paid\"", "\"paid\" ", 1)
                    .into_bytes(),
                event.header.clone(),
            ),
            // A genuine signature, an hour old.
            (
                event.payload.clone(),
                stripe.sign(&event.payload, now - 3_600),
            ),
            (event.payload.clone(), "garbage".to_owned()),
            (event.payload.clone(), String::new()),
        ];
        for (payload, header) in cases {
            let (status, body) = send(payload, header).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(code(&body), "invalid_signature");
        }
        assert_eq!(account(s, &t).await["balance"], "0");
        // The genuine one still works after the forgeries.
        assert_eq!(
            event.deliver(&webhook_url(s)).await.expect("delivered"),
            200
        );
        assert_eq!(account(s, &t).await["balance"], "13500");
    }
);

stripe_test!(
    the_subscription_lifecycle_moves_the_plan,
    async |s: &Server, stripe: &FakeStripe, _llm: &FakeLlm| {
        let t = s.tenant("subscriber").await;
        for plan in ["partner", "cto_scale"] {
            stripe.add_price(FakePrice {
                id: format!("price_{plan}"),
                lookup_key: Some(plan.to_owned()),
                unit_amount: 4_900,
                currency: "usd".into(),
                interval: Some("month".into()),
            });
        }
        let (status, session) = s
            .post(
                "/v1/billing/checkout",
                Some(&t.admin_token),
                json!({"plan": "partner"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let completed = stripe
            .complete_checkout(session["id"].as_str().expect("id"))
            .expect("completed");
        assert_eq!(completed.deliver(&webhook_url(s)).await.expect("sent"), 200);
        let body = account(s, &t).await;
        assert_eq!(body["plan"]["id"], "partner", "{body}");
        assert_eq!(body["subscription_status"], "active");
        assert_eq!(body["balance"], "0", "a subscription grants no credits");
        let customer = body["stripe_customer_id"]
            .as_str()
            .expect("customer")
            .to_owned();
        let sub = stripe
            .object(session["id"].as_str().expect("id"))
            .and_then(|o| o["subscription"].as_str().map(str::to_owned))
            .expect("subscription id");

        // Renewal: the period moves on, and an upgrade changes the plan.
        let next = 1_900_000_000;
        let renewed = stripe.invoice_paid(&sub, &customer, 4_900, "usd", next);
        assert_eq!(renewed.deliver(&webhook_url(s)).await.expect("sent"), 200);
        assert_eq!(account(s, &t).await["current_period_end"], next * 1000);
        let upgraded = stripe.subscription_event(
            "updated",
            &sub,
            &customer,
            "price_cto_scale",
            Some("cto_scale"),
            "active",
            next,
        );
        assert_eq!(upgraded.deliver(&webhook_url(s)).await.expect("sent"), 200);
        assert_eq!(account(s, &t).await["plan"]["id"], "cto_scale");
        // Past due keeps the plan; canceled falls back to the default.
        let late = stripe.subscription_event(
            "updated",
            &sub,
            &customer,
            "price_cto_scale",
            Some("cto_scale"),
            "past_due",
            next,
        );
        assert_eq!(late.deliver(&webhook_url(s)).await.expect("sent"), 200);
        let body = account(s, &t).await;
        assert_eq!(
            (
                body["plan"]["id"].as_str(),
                body["subscription_status"].as_str()
            ),
            (Some("cto_scale"), Some("past_due"))
        );
        let gone = stripe.subscription_event(
            "deleted",
            &sub,
            &customer,
            "price_cto_scale",
            Some("cto_scale"),
            "canceled",
            next,
        );
        assert_eq!(gone.deliver(&webhook_url(s)).await.expect("sent"), 200);
        let body = account(s, &t).await;
        assert_eq!(
            (
                body["plan"]["id"].as_str(),
                body["subscription_status"].as_str()
            ),
            (Some("bootstrapper"), Some("canceled"))
        );
    }
);

stripe_test!(
    usage_goes_to_stripe_as_meter_events_with_stable_identifiers,
    async |s: &Server, stripe: &FakeStripe, llm: &FakeLlm| {
        let t = s.tenant("metered").await;
        // A customer exists once the tenant has checked out.
        let (_, session) = s
            .post(
                "/v1/billing/checkout",
                Some(&t.admin_token),
                json!({"package": "starter"}),
            )
            .await;
        let event = stripe
            .complete_checkout(session["id"].as_str().expect("id"))
            .expect("completed");
        assert_eq!(event.deliver(&webhook_url(s)).await.expect("sent"), 200);
        llm.script(
            "gpt-4o-mini",
            Script::new().usage(Usage {
                input_tokens: 120,
                output_tokens: 80,
            }),
        );
        let (status, answer) = s
            .post(
                "/v1/llm/complete",
                Some(&t.api_key),
                json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let call = answer["id"].as_str().expect("call id");
        assert_eq!(s.app.billing.send_meter_reports().await.expect("sent"), 1);
        // Sending again finds nothing pending; the fake refuses duplicates anyway.
        assert_eq!(s.app.billing.send_meter_reports().await.expect("sent"), 0);
        let events = stripe.meter_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].identifier, format!("llm:{call}"));
        assert_eq!(events[0].value, 200);
        assert_eq!(events[0].event_name, "weft_usage");
        // A resend of the same report (a crash after Stripe took it, before it
        // was marked sent) is harmless.
        let mut tx = s
            .app
            .db
            .begin(weft::db::Scope::Platform, weft::db::Mode::Write)
            .await
            .expect("begin");
        weft::db::Exec::execute(
            &mut tx,
            weft::db::Stmt::new("UPDATE meter_reports SET state = 'pending'"),
        )
        .await
        .expect("reset");
        tx.commit().await.expect("commit");
        assert_eq!(s.app.billing.send_meter_reports().await.expect("sent"), 1);
        assert_eq!(stripe.meter_events().len(), 1, "billed once");
    }
);
