//! The LLM gateway through HTTP, against the fake OpenAI, Anthropic and
//! Gemini servers of `weft-llm-wire` (real wire formats on loopback):
//! exact billing, fallbacks, refusals before the call, daily limits,
//! streaming.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::billing::Micro;
use weft::config::Config;
use weft::db::{Exec, Scope, Stmt};
use weft::ids::now_ms;
use weft_llm_wire::Usage;
use weft_llm_wire::fake::{FakeLlm, Script};

use crate::common::{self, Engine, Server, TestTenant, code};

/// A server whose providers all point at `fake`, with `tweak` applied.
pub(crate) async fn start(engine: Engine, tweak: fn(&mut Config)) -> Option<(Server, FakeLlm)> {
    let fake = FakeLlm::start().await;
    let base = fake.base_url();
    let server = common::start_with(engine, move |c| {
        for p in &mut c.llm.providers {
            p.base_url = base.clone();
            p.api_key = format!("key-{}", p.name);
            p.timeout_ms = 1_500;
        }
        tweak(c);
    })
    .await?;
    Some((server, fake))
}

macro_rules! llm_test {
    ($name:ident, $tweak:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some((server, fake)) = start($crate::common::Engine::Sqlite, $tweak).await {
                    ($body)(&server, &fake).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((server, fake)) = start($crate::common::Engine::Postgres, $tweak).await
                {
                    ($body)(&server, &fake).await;
                    server.stop().await;
                }
            }
        }
    };
}

pub(crate) use llm_test;

pub(crate) fn no_tweak(_: &mut Config) {}

/// Grants `credits` to `t` as the superadmin.
pub(crate) async fn grant(s: &Server, t: &TestTenant, credits: &str) {
    let (status, body) = s
        .post(
            &format!("/v1/tenants/{}/credits", t.slug),
            Some(&s.root_token),
            json!({"amount": credits, "reason": "test credits"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

pub(crate) async fn balance(s: &Server, t: &TestTenant) -> String {
    let (status, body) = s.get("/v1/billing", Some(&t.admin_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["balance"].as_str().expect("balance").to_owned()
}

/// The ledger, asserting that the balance is the sum of its entries.
pub(crate) async fn ledger(s: &Server, t: &TestTenant) -> Vec<Value> {
    let (status, body) = s
        .get("/v1/billing/ledger?limit=500", Some(&t.admin_token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["balance"], body["sum_of_entries"], "{body}");
    // Nothing is in flight once a test looks.
    assert_eq!(body["held"], "0", "{body}");
    body["entries"].as_array().expect("entries").clone()
}

pub(crate) fn kinds(entries: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    kinds.sort_unstable();
    kinds
}

/// `POST /v1/llm/complete` with `t`'s API key.
async fn complete(s: &Server, t: &TestTenant, body: Value) -> (StatusCode, Value) {
    s.post("/v1/llm/complete", Some(&t.api_key), body).await
}

/// `POST /v1/llm/estimate` with `t`'s API key.
async fn estimate(s: &Server, t: &TestTenant, body: Value) -> (StatusCode, Value) {
    s.post("/v1/llm/estimate", Some(&t.api_key), body).await
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 500})
}

pub(crate) fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
    }
}

llm_test!(
    completions_are_billed_exactly,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("exact").await;
        grant(s, &t, "100").await;
        // (tokens in × price in + tokens out × price out) / 1000 × 1.15, exact.
        let cases = [
            // GPT-4o-mini, 2 credits per 1K: (1000 + 500) × 2 / 1000 × 1.15 = 3.45
            (
                "gpt-4o-mini",
                "gpt-4o-mini",
                usage(1_000, 500),
                "3.45",
                "96.55",
            ),
            // Claude Haiku, 5: (200 + 100) × 5 / 1000 × 1.15 = 1.725
            (
                "claude-haiku",
                "claude-3-5-haiku-latest",
                usage(200, 100),
                "1.725",
                "94.825",
            ),
            // Gemini Flash, 1: 17 / 1000 × 1.15 = 0.01955
            (
                "gemini-flash",
                "gemini-2.0-flash",
                usage(10, 7),
                "0.01955",
                "94.80545",
            ),
        ];
        for (model, wire_model, used, cost, after) in cases {
            fake.script(wire_model, Script::new().reply("the answer").usage(used));
            let (status, body) = complete(s, &t, ask(model, "a question")).await;
            assert_eq!(status, StatusCode::OK, "{model}: {body}");
            assert_eq!(body["model"], model, "{body}");
            assert_eq!(body["text"], "the answer", "{body}");
            assert_eq!(body["cost"], cost, "{model}: {body}");
            assert_eq!(body["balance"], after, "{model}: {body}");
            assert_eq!(body["usage"]["input_tokens"], used.input_tokens);
            assert_eq!(body["attempts"].as_array().map(Vec::len), Some(1), "{body}");
            assert_eq!(balance(s, &t).await, after);
        }
        // The provider saw its own wire format, with the operator's key.
        let requests = fake.requests();
        assert_eq!(requests.len(), 3);
        let entries = ledger(s, &t).await;
        assert_eq!(kinds(&entries), ["charge", "charge", "charge", "grant"]);
        // Usage by model and day shows the three calls and their credits.
        let (status, body) = s.get("/v1/billing/usage", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["usage"].as_array().expect("usage");
        let credits: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r["model"].as_str().unwrap_or(""),
                    r["credits"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            credits,
            [
                ("claude-haiku", "1.725"),
                ("gemini-flash", "0.01955"),
                ("gpt-4o-mini", "3.45")
            ]
        );
    }
);

llm_test!(
    a_500_falls_back_and_bills_the_model_that_answered,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("fallback").await;
        grant(s, &t, "50").await;
        // Bootstrapper, complexity low: gpt-4o-mini first (asked), then the
        // cheapest of the tier, gemini-flash.
        fake.script("gpt-4o-mini", Script::new().fail(500, 1));
        fake.script("gemini-2.0-flash", Script::new().usage(usage(1_000, 1_000)));
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["model"], "gemini-flash", "{body}");
        let attempts = body["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2, "{body}");
        assert_eq!(attempts[0]["model"], "gpt-4o-mini");
        assert_eq!(attempts[0]["outcome"], "server_error");
        assert_eq!(attempts[0]["status"], 500);
        assert_eq!(attempts[1]["outcome"], "ok");
        // 2000 tokens of Flash: 2 credits × 1.15.
        assert_eq!(body["cost"], "2.3", "{body}");
        assert_eq!(balance(s, &t).await, "47.7");
        let charges = ledger(s, &t)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "charge")
            .count();
        assert_eq!(charges, 1, "billed once");
    }
);

fn short_timeout(c: &mut Config) {
    for p in &mut c.llm.providers {
        p.timeout_ms = 300;
    }
}

llm_test!(
    a_timeout_falls_back,
    short_timeout,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("slow").await;
        grant(s, &t, "50").await;
        fake.script(
            "gpt-4o-mini",
            Script::new().delay(Duration::from_millis(1_500)),
        );
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["attempts"][0]["outcome"], "timeout", "{body}");
        assert_eq!(body["model"], "gemini-flash", "{body}");
        let charges: Vec<Value> = ledger(s, &t)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "charge")
            .collect();
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0]["reason"], "gemini-flash");
    }
);

llm_test!(
    short_credits_are_refused_before_any_call,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("broke").await;
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_eq!(code(&body), "insufficient_credits");
        assert_eq!(body["error"]["balance"], "0", "{body}");
        assert!(body["error"]["needed"].as_str().is_some(), "{body}");
        assert!(fake.requests().is_empty(), "no provider was called");
        assert!(ledger(s, &t).await.is_empty(), "nothing was written");
        // A grant too small for the estimate is still refused; the estimate
        // endpoint says so without calling.
        grant(s, &t, "0.001").await;
        let (status, body) = estimate(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["affordable"], false, "{body}");
        assert_eq!(body["models"][0], "gpt-4o-mini", "{body}");
        let (status, _) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert!(fake.requests().is_empty());
        assert_eq!(balance(s, &t).await, "0.001");
    }
);

llm_test!(
    a_call_in_flight_holds_its_estimate_and_the_sweeper_releases_what_a_crash_left,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("inflight").await;
        let (status, body) = estimate(s, &t, ask("gpt-4o-mini", "hi")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let needed = Micro::parse(body["estimate"].as_str().expect("estimate")).expect("exact");
        // Enough for one call in flight, not for two.
        let granted = Micro(needed.0 * 3 / 2);
        grant(s, &t, &granted.to_string()).await;
        fake.script(
            "gpt-4o-mini",
            Script::new()
                .delay(Duration::from_millis(600))
                .usage(usage(1, 10)),
        );
        let slow = complete(s, &t, ask("gpt-4o-mini", "hi"));
        let meanwhile = async {
            let account = common::eventually(10, "the first call's hold", || async {
                let (_, body) = s.get("/v1/billing", Some(&t.admin_token)).await;
                (body["held"] == needed.to_string()).then_some(body)
            })
            .await;
            // The hold is beside the balance, not an entry of the ledger.
            assert_eq!(account["balance"], granted.to_string(), "{account}");
            let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hi")).await;
            assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
            assert_eq!(code(&body), "insufficient_credits");
            assert_eq!(body["error"]["balance"], granted.to_string(), "{body}");
            assert_eq!(body["error"]["held"], needed.to_string(), "{body}");
            let available = (granted - needed).to_string();
            assert_eq!(body["error"]["available"], available, "{body}");
            let (_, body) = estimate(s, &t, ask("gpt-4o-mini", "hi")).await;
            assert_eq!(body["available"], available, "{body}");
            assert_eq!(body["affordable"], false, "{body}");
        };
        let ((status, body), ()) = tokio::join!(slow, meanwhile);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            fake.requests().len(),
            1,
            "the refused call reached no provider"
        );
        let after = balance(s, &t).await;
        assert_eq!(body["balance"], after, "{body}");
        assert_eq!(kinds(&ledger(s, &t).await), ["charge", "grant"]);

        // A crash between prepare and settle leaves holds: one as holds are
        // now (on the account), one as they were before migration 0008 (a
        // ledger entry). Each reserved tokens for the day.
        let tenant = s.app.tenants.by_slug("inflight").await.expect("tenant").id;
        let (_, account) = s.get("/v1/billing", Some(&t.admin_token)).await;
        let tokens_before = account["tokens_today"].as_i64().expect("tokens");
        let day = now_ms() / 86_400_000;
        let at = now_ms() - 1;
        let mut tx = s
            .app
            .db
            .begin_unit(Scope::Tenant(&tenant))
            .await
            .expect("unit");
        let writes = [
            Stmt::new("UPDATE billing_accounts SET held = held + 2000000 WHERE tenant_id = $1")
                .bind(tenant.as_str()),
            Stmt::new(
                "INSERT INTO credit_entries (id, tenant_id, kind, amount, idempotency_key, reason, \
                 reference, actor, created_at) VALUES ('old', $1, 'hold', -1000000, 'hold:old', \
                 NULL, 'old', 'crashed', $2)",
            )
            .bind(tenant.as_str())
            .bind(at),
            Stmt::new("UPDATE billing_accounts SET balance = balance - 1000000 WHERE tenant_id = $1")
                .bind(tenant.as_str()),
            Stmt::new(
                "INSERT INTO credit_holds (id, tenant_id, amount, tokens, user_id, day, created_at, in_ledger) \
                 VALUES ('hold:new', $1, 2000000, 100, 'crashed', $2, $3, 0), \
                 ('hold:old', $1, 1000000, 50, 'crashed', $2, $3, 1)",
            )
            .bind(tenant.as_str())
            .bind(day)
            .bind(at),
            Stmt::new(
                "UPDATE llm_daily SET tokens = tokens + 150 WHERE tenant_id = $1 AND day = $2 AND user_id = ''",
            )
            .bind(tenant.as_str())
            .bind(day),
            Stmt::new(
                "INSERT INTO llm_daily (tenant_id, day, user_id, tokens, calls) VALUES ($1, $2, 'crashed', 150, 0)",
            )
            .bind(tenant.as_str())
            .bind(day),
        ];
        for stmt in writes {
            tx.execute(stmt).await.expect("crash-left write");
        }
        tx.commit().await.expect("commit");
        let (_, account) = s.get("/v1/billing", Some(&t.admin_token)).await;
        assert_eq!(account["held"], "2", "{account}");
        assert_eq!(account["tokens_today"], tokens_before + 150, "{account}");

        let released = s
            .app
            .llm
            .release_stale_holds(Duration::ZERO)
            .await
            .expect("sweep");
        assert_eq!(released, 2);
        let (_, account) = s.get("/v1/billing", Some(&t.admin_token)).await;
        assert_eq!(account["balance"], after, "{account}");
        assert_eq!(account["held"], "0", "{account}");
        assert_eq!(account["tokens_today"], tokens_before, "{account}");
        let entries = ledger(s, &t).await;
        assert_eq!(kinds(&entries), ["charge", "grant", "hold", "release"]);
        let release = entries
            .iter()
            .find(|e| e["kind"] == "release")
            .expect("release");
        assert_eq!(release["amount"], "1", "{release}");
        assert_eq!(release["reference"], "old", "{release}");
        // Nothing is left for a second sweep.
        let again = s
            .app
            .llm
            .release_stale_holds(Duration::ZERO)
            .await
            .expect("sweep");
        assert_eq!(again, 0);
    }
);

fn tight_daily_limit(c: &mut Config) {
    for plan in &mut c.billing.plans {
        plan.tokens_per_day = Some(2_000);
        plan.sessions_per_day = Some(2);
    }
}

llm_test!(
    a_daily_limit_is_a_403_with_its_reset_time,
    tight_daily_limit,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("limited").await;
        grant(s, &t, "100").await;
        fake.script("gpt-4o-mini", Script::new().usage(usage(450, 450)));
        // Each call reserves 1 + 500 tokens first, then is corrected to 900.
        for _ in 0..2 {
            let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hi")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (status, body) = s.get("/v1/billing", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["tokens_today"], 1_800, "{body}");
        // A third call would need 501 more: over 2,000.
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hi")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "daily_limit_exceeded");
        assert_eq!(body["error"]["limit_kind"], "tokens", "{body}");
        let reset = body["error"]["reset_at"].as_str().expect("reset_at");
        assert!(reset.ends_with("T00:00:00Z"), "{reset}");
        assert_eq!(
            fake.requests().len(),
            2,
            "the refused call reached no provider"
        );

        // Sessions are limited per day too: a third new one is refused, an
        // open one goes on.
        let t2 = s.tenant("sessions").await;
        grant(s, &t2, "100").await;
        fake.script("gpt-4o-mini", Script::new().usage(usage(1, 1)));
        let with_session = |id: &str| {
            let mut body = ask("gpt-4o-mini", "hi");
            body["max_tokens"] = json!(10);
            body["session"] = json!(id);
            body
        };
        for id in ["a", "b", "a"] {
            let (status, body) = complete(s, &t2, with_session(id)).await;
            assert_eq!(status, StatusCode::OK, "session {id}: {body}");
        }
        let (status, body) = complete(s, &t2, with_session("c")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "daily_limit_exceeded");
        assert_eq!(body["error"]["limit_kind"], "sessions", "{body}");
    }
);

llm_test!(
    nothing_is_charged_when_every_provider_fails,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("down").await;
        grant(s, &t, "10").await;
        for model in ["gpt-4o-mini", "gemini-2.0-flash", "claude-3-5-haiku-latest"] {
            fake.script(model, Script::new().fail(503, 10));
        }
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(code(&body), "llm_unavailable");
        assert_eq!(
            body["error"]["attempts"].as_array().map(Vec::len),
            Some(3),
            "{body}"
        );
        assert_eq!(balance(s, &t).await, "10");
        let entries = ledger(s, &t).await;
        assert_eq!(kinds(&entries), ["grant"]);
        // A 400 from the provider is not retried elsewhere.
        fake.script("gpt-4o-mini", Script::new().fail(400, 1));
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "hello")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(code(&body), "llm_rejected");
        assert_eq!(
            body["error"]["attempts"].as_array().map(Vec::len),
            Some(1),
            "{body}"
        );
        assert_eq!(balance(s, &t).await, "10");
    }
);

/// The `(event, data)` pairs of a server-sent-events body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !event.is_empty() {
            out.push((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}

async fn stream(s: &Server, key: &str, body: Value) -> (StatusCode, Vec<(String, Value)>) {
    let response = s
        .client
        .post(format!("{}/v1/llm/complete", s.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, sse_events(&text))
}

llm_test!(
    a_streamed_completion_is_billed_from_its_final_usage,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("stream").await;
        grant(s, &t, "20").await;
        for (model, wire_model, cost) in [
            // (400 + 600) × 2 / 1000 × 1.15
            ("gpt-4o-mini", "gpt-4o-mini", "2.3"),
            // (400 + 600) × 5 / 1000 × 1.15
            ("claude-haiku", "claude-3-5-haiku-latest", "5.75"),
            // (400 + 600) × 1 / 1000 × 1.15
            ("gemini-flash", "gemini-2.0-flash", "1.15"),
        ] {
            fake.script(
                wire_model,
                Script::new()
                    .reply("one two three four five six")
                    .usage(usage(400, 600)),
            );
            let mut body = ask(model, "count");
            body["stream"] = json!(true);
            let (status, events) = stream(s, &t.api_key, body).await;
            assert_eq!(status, StatusCode::OK);
            let deltas: String = events
                .iter()
                .filter(|(e, _)| e == "delta")
                .filter_map(|(_, d)| d["text"].as_str())
                .collect();
            assert_eq!(deltas, "one two three four five six", "{model}: {events:?}");
            let (last, done) = events.last().expect("events");
            assert_eq!(last, "done", "{events:?}");
            assert_eq!(done["cost"], cost, "{model}: {done}");
            assert_eq!(done["usage"]["output_tokens"], 600);
        }
        assert_eq!(balance(s, &t).await, "10.8");
        ledger(s, &t).await;
    }
);

llm_test!(
    bad_requests_are_clear_4xx,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("badllm").await;
        grant(s, &t, "10").await;
        let cases = [
            (
                json!({"messages": []}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                ask("no-such-model", "x"),
                StatusCode::BAD_REQUEST,
                "unknown_model",
            ),
            // Opus is not on the bootstrapper plan.
            (
                ask("claude-opus", "x"),
                StatusCode::FORBIDDEN,
                "model_not_allowed",
            ),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image", "media_type": "image/png", "data": "!!"}]}]}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                json!({"task": "dance", "messages": [{"role": "user", "content": "x"}]}),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
        ];
        for (body, status, expected) in cases {
            let (got, answer) = complete(s, &t, body.clone()).await;
            assert_eq!(
                (got, code(&answer)),
                (status, expected),
                "{body} → {answer}"
            );
        }
        assert!(fake.requests().is_empty());
        assert_eq!(balance(s, &t).await, "10");
        // A suspended tenant is refused.
        let (status, body) = s
            .put(
                &format!("/v1/tenants/{}/billing", t.slug),
                Some(&s.root_token),
                json!({"suspended": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = complete(s, &t, ask("gpt-4o-mini", "x")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "account_suspended")
        );
        // Only the superadmin grants credits.
        let (status, _) = s
            .post(
                &format!("/v1/tenants/{}/credits", t.slug),
                Some(&t.admin_token),
                json!({"amount": 5, "reason": "me"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);

llm_test!(
    images_reach_the_provider_in_its_format,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("vision").await;
        grant(s, &t, "10").await;
        let png =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"\x89PNG fake");
        let body = json!({
            "model": "claude-haiku",
            "task": "vision",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "media_type": "image/png", "data": png},
            ]}],
        });
        let (status, answer) = complete(s, &t, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let seen = fake.last_request().expect("request");
        let content = &seen.body["messages"][0]["content"];
        assert_eq!(content[1]["type"], "image", "{content}");
        assert_eq!(content[1]["source"]["data"], png.as_str());
        assert_eq!(content[1]["source"]["media_type"], "image/png");
    }
);

llm_test!(
    a_users_own_limits_apply_to_their_calls,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        let t = s.tenant("userlimits").await;
        grant(s, &t, "100").await;
        let user = s.user(&t, "Limited").await;
        let (status, body) = s
            .put(
                &format!("/v1/tenants/{}/users/{}/llm-limits", t.slug, user.id),
                Some(&t.admin_token),
                json!({"tokens_per_day": 300, "allowed_models": ["gpt-4o-mini"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let call = |model: &str, max_tokens: u32| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens});
        let (status, body) = s
            .post(
                "/v1/llm/complete",
                Some(&user.token),
                call("claude-haiku", 50),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "model_not_allowed");
        let (status, body) = s
            .post(
                "/v1/llm/complete",
                Some(&user.token),
                call("gpt-4o-mini", 500),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "daily_limit_exceeded");
        assert_eq!(body["error"]["limit_kind"], "your tokens", "{body}");
        assert_eq!(fake.requests().len(), 0, "refused before any call");
        let (status, body) = s
            .post(
                "/v1/llm/complete",
                Some(&user.token),
                call("gpt-4o-mini", 100),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The admin, without overrides, is not limited by the user's.
        let (status, body) = s
            .post(
                "/v1/llm/complete",
                Some(&t.admin_token),
                call("claude-haiku", 500),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
);
