//! Billing through HTTP: grants and their idempotency, packages, plans,
//! per-user limits, and a month's invoice checked against a hand-computed
//! total.

use reqwest::StatusCode;
use serde_json::json;
use weft::config::Config;
use weft::db::{Exec, Mode, Scope, Stmt};
use weft::ids::TenantId;

use crate::common::{Server, code};
use crate::{both_engines, both_engines_with};

both_engines!(grants_are_idempotent_and_audited, async |s: &Server| {
    let t = s.tenant("grants").await;
    let path = format!("/v1/tenants/{}/credits", t.slug);
    let body = json!({"amount": "12.5", "reason": "welcome", "idempotency_key": "welcome-1"});
    let (status, first) = s.post(&path, Some(&s.root_token), body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["balance"], "12.5");
    let (status, again) = s.post(&path, Some(&s.root_token), body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["balance"], "12.5", "credited once");
    let (status, body) = s
        .post(
            &path,
            Some(&s.root_token),
            json!({"amount": "-2.5", "reason": "correction"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["balance"], "10");
    for bad in [
        json!({"amount": 0, "reason": "x"}),
        json!({"amount": "1.0000001", "reason": "x"}),
        json!({"amount": 1.5, "reason": "x"}),
        json!({"amount": "1", "reason": ""}),
    ] {
        let (status, body) = s.post(&path, Some(&s.root_token), bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert_eq!(code(&body), "invalid_input");
    }
    let (status, ledger) = s
        .get(
            &format!("/v1/tenants/{}/billing/ledger", t.slug),
            Some(&s.root_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(ledger["balance"], ledger["sum_of_entries"]);
    // Another tenant's admin cannot read it.
    let other = s.tenant("grants-other").await;
    let (status, _) = s
        .get(
            &format!("/v1/tenants/{}/billing/ledger", t.slug),
            Some(&other.admin_token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

both_engines!(packages_plans_and_user_limits, async |s: &Server| {
    let t = s.tenant("shop").await;
    let (status, body) = s.get("/v1/billing/packages", Some(&t.admin_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let packages: Vec<(String, String, i64)> = body["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or("").to_owned(),
                p["credits"].as_str().unwrap_or("").to_owned(),
                p["price_minor"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [
        ("starter", "1000", 1_000),
        ("basic", "5500", 4_500),
        ("pro", "13500", 10_000),
        ("business", "35000", 22_500),
        ("enterprise", "120000", 70_000),
    ];
    assert_eq!(
        packages,
        expected.map(|(i, c, p)| (i.to_owned(), c.to_owned(), p))
    );
    // The superadmin edits one; a tenant admin may not.
    let edit = json!({"name": "Starter", "credits": 1200, "price_minor": 1000});
    let (status, _) = s
        .put(
            "/v1/billing/packages/starter",
            Some(&t.admin_token),
            edit.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .put("/v1/billing/packages/starter", Some(&s.root_token), edit)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = s.get("/v1/billing/packages", Some(&t.admin_token)).await;
    assert_eq!(body["packages"][0]["credits"], "1200");

    let (status, body) = s.get("/v1/billing/plans", Some(&t.admin_token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["bootstrapper", "partner", "cto_scale"]);
    let (status, body) = s
        .put(
            &format!("/v1/tenants/{}/billing", t.slug),
            Some(&s.root_token),
            json!({"plan": "nope"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_plan")
    );
    let (status, body) = s
        .put(
            &format!("/v1/tenants/{}/billing", t.slug),
            Some(&s.root_token),
            json!({"plan": "partner"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["plan"]["id"], "partner");

    // Per-user limits: an admin sets them, a model must exist.
    let user = s.user(&t, "Coder").await;
    let path = format!("/v1/tenants/{}/users/{}/llm-limits", t.slug, user.id);
    let (status, body) = s
        .put(
            &path,
            Some(&t.admin_token),
            json!({"allowed_models": ["gpt-9"]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "unknown_model")
    );
    let limits =
        json!({"tokens_per_day": 1000, "allowed_models": ["gpt-4o-mini"], "default_models": null});
    let (status, body) = s.put(&path, Some(&t.admin_token), limits.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = s.get(&path, Some(&t.admin_token)).await;
    assert_eq!(body, limits);
    let (status, _) = s.put(&path, Some(&user.token), json!({})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "users do not set their own limits"
    );
    let (status, body) = s.get("/v1/billing/usage/me", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokens_today"], 0);
});

fn invoiced_llm(c: &mut Config) {
    c.billing.prices.bill_llm_credits = true;
}

async fn insert(s: &Server, stmt: Stmt) {
    let mut tx = s
        .app
        .db
        .begin(Scope::Platform, Mode::Write)
        .await
        .expect("begin");
    tx.execute(stmt).await.expect("insert");
    tx.commit().await.expect("commit");
}

both_engines_with!(
    a_months_invoice_matches_the_hand_computed_total,
    invoiced_llm,
    async |s: &Server| {
        let t = s.tenant("invoiced").await;
        let (status, _) = s
            .put(
                &format!("/v1/tenants/{}/billing", t.slug),
                Some(&s.root_token),
                json!({"plan": "partner"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let tenant: TenantId = s.app.tenants.by_slug("invoiced").await.expect("tenant").id;
        // October 2026: 2026-10-01T00:00Z is 1,790,812,800,000 ms.
        let oct = 1_790_812_800_000_i64;
        let nov = oct + 31 * 86_400_000;
        let call = |id: &str, model: &str, cost: i64, at: i64| {
            Stmt::new(
            "INSERT INTO llm_calls (id, tenant_id, user_id, plugin, task, model, provider, input_tokens, \
             output_tokens, cost, estimate, outcome, attempts, streamed, latency_us, created_at) \
             VALUES ($1, $2, 'u', NULL, 'chat', $3, 'p', 100, 200, $4, $4, 'ok', '[]', 0, 1, $5)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(model)
        .bind(cost)
        .bind(at)
        };
        // Two GPT-4o calls of 43.125 credits, one Haiku call of 1.725; one call
        // in November that October's invoice must not count.
        insert(s, call("c1", "gpt-4o", 43_125_000, oct + 1_000)).await;
        insert(s, call("c2", "gpt-4o", 43_125_000, nov - 1)).await;
        insert(s, call("c3", "claude-haiku", 1_725_000, oct + 86_400_000)).await;
        insert(s, call("c4", "gpt-4o", 99_000_000, nov)).await;
        let usage = |key: &str, fuel: i64, bytes_in: i64, bytes_out: i64, at: i64| {
            Stmt::new(
            "INSERT INTO usage_events (tenant_id, idempotency_key, plugin, version, fuel, wall_us, peak_memory, \
             bytes_in, bytes_out, outcome, request_id, occurred_at) \
             VALUES ($1, $2, 'hello', '0.1.0', $3, 1, 1, $4, $5, 'ok', $2, $6)",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(fuel)
        .bind(bytes_in)
        .bind(bytes_out)
        .bind(at)
        };
        insert(
            s,
            usage("u1", 1_500_000_000, 1_000_000_000, 500_000_000, oct + 5),
        )
        .await;
        insert(s, usage("u2", 2_000_000_000, 1, 1_000_000_000, nov - 5)).await;
        insert(s, usage("u3", 7_000_000_000, 7, 7, nov + 5)).await;
        // Messages the outbox delivered: two emails and three SMS in
        // October, one SMS in November.
        for (i, (channel, at)) in [
            ("email", oct + 10),
            ("email", oct + 11),
            ("sms", oct + 12),
            ("sms", oct + 13),
            ("sms", nov - 2),
            ("sms", nov + 2),
        ]
        .into_iter()
        .enumerate()
        {
            insert(
                s,
                Stmt::new(
                    "INSERT INTO usage_events (tenant_id, idempotency_key, plugin, version, fuel, wall_us, \
                     peak_memory, bytes_in, bytes_out, outcome, request_id, occurred_at) \
                     VALUES ($1, $2, $3, 'notifier', 0, 0, 0, 0, 0, 'ok', $2, $4)",
                )
                .bind(tenant.as_str())
                .bind(format!("message:m{i}"))
                .bind(format!("outbox:{channel}"))
                .bind(at),
            )
            .await;
        }
        // 2 GB stored every day of October, 9 GB on November 1st.
        for day in 0..32 {
            let bytes: i64 = if day < 31 {
                2_000_000_000
            } else {
                9_000_000_000
            };
            insert(
                s,
                Stmt::new(
                    "INSERT INTO storage_samples (tenant_id, day, bytes) VALUES ($1, $2, $3)",
                )
                .bind(tenant.as_str())
                .bind(oct / 86_400_000 + day)
                .bind(bytes),
            )
            .await;
        }
        let (status, invoice) = s
            .post(
                &format!("/v1/tenants/{}/billing/invoices", t.slug),
                Some(&s.root_token),
                json!({"period": "2026-10"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{invoice}");
        // By hand, in cents:
        //   partner fee                                   4900
        //   gpt-4o 86.25 credits at $10 / 1000 credits  ceil(86.25)    = 87
        //   claude-haiku 1.725 credits                  ceil(1.725)    = 2
        //   fuel 3.5e9 at 10 / 1e9                                       35
        //   62e9 byte-days / 31 days = 2 GB-month at 25                  50
        //   2,500,000,001 bytes at 9 / GB              ceil(22.5000…)  = 23
        //   2 emails at 100 / 1000                      ceil(0.2)      = 1
        //   3 SMS at 800 / 1000                         ceil(2.4)      = 3
        let amounts: Vec<(&str, i64)> = invoice["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| {
                (
                    l["kind"].as_str().unwrap_or(""),
                    l["amount_minor"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            amounts,
            [
                ("platform_fee", 4_900),
                ("llm", 2),
                ("llm", 87),
                ("compute", 35),
                ("storage", 50),
                ("bandwidth", 23),
                ("messages", 1),
                ("messages", 3),
            ],
            "{invoice}"
        );
        assert_eq!(invoice["total_minor"], 5_101, "{invoice}");
        assert_eq!(invoice["currency"], "usd");
        // Made once: asking again returns the same invoice.
        let (_, again) = s
            .post(
                &format!("/v1/tenants/{}/billing/invoices", t.slug),
                Some(&s.root_token),
                json!({"period": "2026-10"}),
            )
            .await;
        assert_eq!(again["id"], invoice["id"]);
        // The tenant admin sees it, as JSON and CSV.
        let (status, list) = s.get("/v1/billing/invoices", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK);
        // The scheduler's first monthly run may have invoiced last month
        // too, if the tenant existed by then: look for October's.
        let october = list["invoices"]
            .as_array()
            .expect("invoices")
            .iter()
            .find(|i| i["period"] == "2026-10")
            .cloned()
            .expect("October's invoice is listed");
        assert_eq!(october["total_minor"], 5_101, "{list}");
        let csv = s
            .client
            .get(format!("{}/v1/billing/invoices/2026-10?format=csv", s.base))
            .bearer_auth(&t.admin_token)
            .send()
            .await
            .expect("csv");
        assert_eq!(csv.status(), StatusCode::OK);
        let text = csv.text().await.expect("text");
        assert!(
            text.starts_with("period,kind,description,quantity,unit,amount_minor,currency\n"),
            "{text}"
        );
        assert!(text.ends_with("2026-10,total,,,,5101,usd\n"), "{text}");
        // A month that has not ended, and a malformed one.
        for (period, expected) in [("2999-01", "invalid_input"), ("2026-13", "invalid_input")] {
            let (status, body) = s
                .post(
                    &format!("/v1/tenants/{}/billing/invoices", t.slug),
                    Some(&s.root_token),
                    json!({"period": period}),
                )
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, expected),
                "{body}"
            );
        }
    }
);
