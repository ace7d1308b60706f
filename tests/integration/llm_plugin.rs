//! The `llm` import (`weft:platform@0.3.0`): a plugin asks the gateway from
//! a request and from an event handler, is billed like a REST caller, sees
//! the gateway's refusals as WIT errors, and may not call it inside a write.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_llm_wire::fake::{FakeLlm, Script};

use crate::common::{Server, TestTenant, code, eventually};
use crate::llm::{balance, grant, kinds, ledger, llm_test, no_tweak, start, usage};

/// A tenant with the assistant plugin enabled.
async fn assistant(s: &Server, slug: &str) -> TestTenant {
    s.install_test_plugin("assistant").await;
    let t = s.tenant(slug).await;
    s.enable(&t, "assistant").await;
    t
}

async fn post(s: &Server, t: &TestTenant, route: &str, body: Value) -> (StatusCode, Value) {
    s.post(
        &format!("/t/{}/p/assistant{route}", t.slug),
        Some(&t.api_key),
        body,
    )
    .await
}

llm_test!(
    a_plugin_completes_and_is_billed_like_any_caller,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = assistant(s, "plugged").await;
        grant(s, &t, "100").await;
        // Slower than the plugin's own 200 ms limit: time spent waiting for
        // the gateway is not the guest's.
        fake.script(
            "gpt-4o-mini",
            Script::new()
                .reply("from the plugin")
                .usage(usage(1_000, 500))
                .delay(Duration::from_millis(500)),
        );
        let (status, body) = post(
            s,
            &t,
            "/ask",
            json!({"text": "hello", "model": "gpt-4o-mini", "max_tokens": 500}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["text"], "from the plugin");
        // (1000 + 500) × 2 / 1000 × 1.15, as through REST.
        assert_eq!(body["cost"], "3.45", "{body}");
        assert_eq!(body["balance"], "96.55", "{body}");
        assert_eq!(body["attempts"][0]["outcome"], "ok", "{body}");
        assert_eq!(balance(s, &t).await, "96.55");
        let entries = ledger(s, &t).await;
        assert_eq!(kinds(&entries), ["charge", "grant"], "{entries:?}");
        // The provider got no key of the plugin's: the operator's.
        let seen = fake.last_request().expect("request");
        assert_eq!(seen.body["model"], "gpt-4o-mini");

        // The estimate holds nothing.
        let (status, body) = post(
            s,
            &t,
            "/estimate",
            json!({"text": "hello", "model": "gpt-4o-mini", "max_tokens": 500}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["models"][0], "gpt-4o-mini", "{body}");
        assert_eq!(balance(s, &t).await, "96.55");

        // Images reach the provider in its own format.
        let (status, body) = post(
            s,
            &t,
            "/ask",
            json!({"text": "what is this?", "model": "claude-haiku", "task": "vision", "image": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seen = fake.last_request().expect("request");
        let content = &seen.body["messages"][0]["content"];
        assert_eq!(content[0]["type"], "image", "{content}");
        assert_eq!(content[0]["source"]["media_type"], "image/png", "{content}");

        // Embeddings.
        let (status, body) = post(s, &t, "/embed", json!({"texts": ["a", "b"]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["count"], 2, "{body}");
    }
);

llm_test!(
    the_gateways_refusals_reach_the_plugin_and_charge_nothing,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = assistant(s, "refused").await;
        let mini = json!({"text": "hi", "model": "gpt-4o-mini"});
        // No credits: refused before any call.
        let (status, body) = post(s, &t, "/ask", mini.clone()).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_eq!(code(&body), "insufficient_credits");
        assert_eq!(fake.requests().len(), 0);

        grant(s, &t, "50").await;
        // Every model of the chain fails: nothing is charged.
        for model in ["gpt-4o-mini", "gemini-2.0-flash", "claude-3-5-haiku-latest"] {
            fake.script(model, Script::new().fail(503, 10));
        }
        let (status, body) = post(s, &t, "/ask", mini.clone()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(code(&body), "llm_unavailable");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("3 tried"),
            "{body}"
        );
        assert_eq!(balance(s, &t).await, "50");
        fake.reset();

        // A model call after the call's first write is refused, and no
        // model is asked.
        let before = fake.requests().len();
        let (status, body) = post(s, &t, "/write-then-ask", json!({})).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(code(&body), "llm_after_write", "{body}");
        assert_eq!(fake.requests().len(), before);

        // A model the catalog does not have.
        let (status, body) = post(s, &t, "/ask", json!({"text": "hi", "model": "gpt-17"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "invalid_request");
        assert_eq!(balance(s, &t).await, "50");
        let entries = ledger(s, &t).await;
        assert_eq!(kinds(&entries), ["grant"], "{entries:?}");
    }
);

llm_test!(
    event_handlers_ask_the_model_once_per_event,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = assistant(s, "handlers").await;
        grant(s, &t, "100").await;
        for model in ["gpt-4o-mini", "gemini-2.0-flash", "claude-3-5-haiku-latest"] {
            fake.script(model, Script::new().reply("handled").usage(usage(100, 100)));
        }
        let mut ids = Vec::new();
        for n in 0..3 {
            let (status, body) =
                post(s, &t, "/question", json!({"text": format!("question {n}")})).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            ids.push(body["event"].as_str().expect("event id").to_owned());
        }
        let answers = eventually(30, "three answers", || async {
            let (_, body) = s
                .get(
                    &format!("/t/{}/p/assistant/answers", t.slug),
                    Some(&t.api_key),
                )
                .await;
            let answers = body["answers"].as_object().cloned().unwrap_or_default();
            (answers.len() == 3).then_some(answers)
        })
        .await;
        for id in &ids {
            assert_eq!(answers[id], "handled", "{answers:?}");
        }
        // Each handler asked once (its writes committed with the delivery),
        // and each call was charged once.
        let asked: usize = fake.requests().len();
        assert_eq!(asked, 3, "{:?}", fake.requests());
        let entries = ledger(s, &t).await;
        let charges = entries.iter().filter(|e| e["kind"] == "charge").count();
        assert_eq!(charges, 3, "{entries:?}");
    }
);
