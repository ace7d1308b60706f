//! A tenant's own provider keys: stored encrypted, shown by their last four
//! characters only, used for that tenant's calls alone, which cost it no
//! credits; a provider the operator has no key for becomes usable.

use reqwest::StatusCode;
use serde_json::json;
use weft::config::Config;
use weft::db::{Exec, Mode, Scope, Stmt};
use weft_llm_wire::fake::{FakeLlm, Script};

use crate::common::{Server, TestTenant, code};
use crate::llm::{balance, grant, kinds, ledger, llm_test, start, usage};

/// The operator has no Anthropic key.
fn no_anthropic(c: &mut Config) {
    for p in &mut c.llm.providers {
        if p.name == "anthropic" {
            p.api_key.clear();
            p.api_key_env.clear();
        }
    }
}

async fn set_key(
    s: &Server,
    t: &TestTenant,
    provider: &str,
    key: &str,
) -> (StatusCode, serde_json::Value) {
    s.put(
        &format!("/v1/tenants/{}/llm/keys/{provider}", t.slug),
        Some(&t.admin_token),
        json!({ "api_key": key }),
    )
    .await
}

async fn complete(s: &Server, t: &TestTenant, model: &str) -> (StatusCode, serde_json::Value) {
    s.post(
        "/v1/llm/complete",
        Some(&t.api_key),
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}),
    )
    .await
}

llm_test!(
    a_tenants_own_key_is_used_for_it_alone_and_costs_no_credits,
    no_anthropic,
    async |s: &Server, fake: &FakeLlm| {
        let own = s.tenant("ownkey").await;
        let other = s.tenant("platformkey").await;
        grant(s, &own, "10").await;
        grant(s, &other, "10").await;
        fake.script(
            "gpt-4o-mini",
            Script::new().reply("ok").usage(usage(1_000, 500)),
        );

        let (status, body) = set_key(s, &own, "openai", "sk-own-tenant-key-1234").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["hint"], "…1234", "{body}");
        let (status, body) = s
            .get(
                &format!("/v1/tenants/{}/llm/keys", own.slug),
                Some(&own.admin_token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["keys"][0]["provider"], "openai", "{body}");
        assert!(!body.to_string().contains("sk-own"), "never shown: {body}");
        // At rest it is ciphertext.
        let mut tx = s
            .app
            .db
            .begin(Scope::Platform, Mode::Read)
            .await
            .expect("begin");
        let rows = tx
            .fetch_all(Stmt::new("SELECT ciphertext FROM tenant_secrets"))
            .await
            .expect("rows");
        assert_eq!(rows.len(), 1);
        let stored: Vec<u8> = rows[0].get(0).expect("ciphertext");
        assert!(
            !stored.windows(6).any(|w| w == b"sk-own"),
            "encrypted at rest"
        );
        drop(tx);

        // The tenant's call goes out with its key and costs nothing.
        let (status, body) = complete(s, &own, "gpt-4o-mini").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["own_key"], true, "{body}");
        assert_eq!(body["cost"], "0", "{body}");
        let seen = fake.last_request().expect("request");
        assert_eq!(seen.api_key.as_deref(), Some("sk-own-tenant-key-1234"));
        assert_eq!(balance(s, &own).await, "10");
        // The estimate was held (a fallback could have run on the
        // platform's key) and released; nothing was charged.
        assert_eq!(kinds(&ledger(s, &own).await), ["grant"]);

        // Another tenant's call uses the platform's key and is charged.
        let (status, body) = complete(s, &other, "gpt-4o-mini").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["own_key"], false, "{body}");
        assert_eq!(
            fake.last_request().expect("request").api_key.as_deref(),
            Some("key-openai")
        );
        assert_eq!(balance(s, &other).await, "6.55");

        // A provider the operator has no key for: only with the tenant's own.
        let (status, body) = complete(s, &other, "claude-haiku").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(code(&body), "provider_not_configured");
        let (status, _) = set_key(s, &own, "anthropic", "sk-ant-own-5678").await;
        assert_eq!(status, StatusCode::OK);
        let haiku = |body: &serde_json::Value| {
            body["models"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["id"] == "claude-haiku").cloned())
                .unwrap_or_default()
        };
        let (_, mine) = s.get("/v1/llm/models", Some(&own.api_key)).await;
        assert_eq!(haiku(&mine)["configured"], true, "{mine}");
        assert_eq!(haiku(&mine)["own_key"], true, "{mine}");
        let (_, theirs) = s.get("/v1/llm/models", Some(&other.api_key)).await;
        assert_eq!(haiku(&theirs)["configured"], false, "{theirs}");
        let (status, body) = complete(s, &own, "claude-haiku").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            fake.last_request().expect("request").api_key.as_deref(),
            Some("sk-ant-own-5678")
        );

        // Removed: the platform's key and credits apply again.
        let path = format!("/v1/tenants/{}/llm/keys/openai", own.slug);
        let (status, _) = s.delete(&path, Some(&own.admin_token)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = s.delete(&path, Some(&own.admin_token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = complete(s, &own, "gpt-4o-mini").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["own_key"], false, "{body}");
        assert_eq!(balance(s, &own).await, "6.55");
    }
);

llm_test!(
    own_keys_are_an_admins_and_are_checked,
    no_anthropic,
    async |s: &Server, _fake: &FakeLlm| {
        let t = s.tenant("keyrules").await;
        let user = s.user(&t, "member").await;
        let path = format!("/v1/tenants/{}/llm/keys/openai", t.slug);
        let (status, body) = s
            .put(
                &path,
                Some(&user.token),
                json!({"api_key": "sk-user-tries-1234"}),
            )
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{status} {body}"
        );
        let (status, body) = set_key(s, &t, "nosuch", "sk-whatever-1234").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(code(&body), "unknown_provider");
        let (status, body) = set_key(s, &t, "openai", "short").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = set_key(s, &t, "openai", "has a space in it").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, body) = s
            .get(
                &format!("/v1/tenants/{}/llm/keys", t.slug),
                Some(&t.admin_token),
            )
            .await;
        assert_eq!(body["keys"], json!([]), "nothing stored: {body}");
    }
);
