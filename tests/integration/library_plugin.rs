//! The `library` import (`weft:platform@0.5.0`): a plugin searches the
//! global items and its tenant's own (never another tenant's), reads and
//! counts uses of them, generates search-first (a hit calls no model, a
//! miss is billed like any gateway call and counts in the hit rate), and may
//! not call the library inside a write.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_llm_wire::fake::{FakeLlm, Script};

use crate::common::{Server, TestTenant, code};
use crate::library_generate::{WOMBAT, wombat_item};
use crate::llm::{grant, llm_test, no_tweak, start};

/// A tenant with the librarian plugin (installed first) enabled.
async fn librarian(s: &Server, slug: &str) -> TestTenant {
    let t = s.tenant(slug).await;
    s.enable(&t, "librarian").await;
    t
}

async fn post(s: &Server, t: &TestTenant, route: &str, body: Value) -> (StatusCode, Value) {
    s.post(
        &format!("/t/{}/p/librarian{route}", t.slug),
        Some(&t.api_key),
        body,
    )
    .await
}

fn ids(found: &Value) -> Vec<String> {
    found["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|h| h["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

llm_test!(
    a_plugin_sees_the_global_items_and_its_own_tenants_only,
    no_tweak,
    async |s: &Server, _fake: &FakeLlm| {
        s.install_test_plugin("librarian").await;
        let acme = librarian(s, "acme").await;
        let other = librarian(s, "other").await;
        let wombat = wombat_item(s, &acme.api_key).await;

        let query =
            json!({"q": "wombat invoice numbering sequence", "language": "rust", "explain": true});
        let (status, found) = post(s, &acme, "/search", query.clone()).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(ids(&found).first(), Some(&wombat), "{found}");
        let top = &found["hits"][0];
        assert_eq!(top["global"], false, "{found}");
        assert!(
            top["why"]["keyword"]["matched"]["title"].is_array(),
            "the explanation names the matched title terms: {found}"
        );
        assert!(
            ["hybrid", "keyword"].contains(&found["mode"].as_str().unwrap_or("")),
            "{found}"
        );
        // Another tenant's plugin never sees it, by search or by id.
        let (status, theirs) = post(s, &other, "/search", query).await;
        assert_eq!(status, StatusCode::OK, "{theirs}");
        assert!(!ids(&theirs).contains(&wombat), "{theirs}");
        let (status, body) = post(s, &other, "/get", json!({"id": wombat})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (_, body) = post(s, &other, "/use", json!({"id": wombat})).await;
        assert_eq!(body["used"], false, "{body}");

        // Global items are everyone's.
        let (status, global) = post(
            s,
            &other,
            "/search",
            json!({"q": "debounce a value in a React component", "language": "tsx", "limit": 3}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{global}");
        let hits = global["hits"].as_array().expect("hits");
        assert!(!hits.is_empty() && hits.len() <= 3, "{global}");
        assert!(
            hits.iter()
                .all(|h| h["global"] == true && h["language"] == "tsx")
        );

        // The owner reads its item with its code, and counts a use.
        let (status, item) = post(s, &acme, "/get", json!({"id": wombat})).await;
        assert_eq!(status, StatusCode::OK, "{item}");
        assert_eq!(item["code"], WOMBAT);
        assert_eq!(item["version"], 1);
        let (_, body) = post(s, &acme, "/use", json!({"id": wombat})).await;
        assert_eq!(body["used"], true, "{body}");
        let (_, rest) = s
            .get(&format!("/v1/library/items/{wombat}"), Some(&acme.api_key))
            .await;
        assert_eq!(rest["uses"], 1, "{rest}");
        let (status, body) = post(s, &acme, "/get", json!({"id": wombat, "version": 7})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        // Bad queries are the guest's errors, with the field named.
        for (bad, field) in [
            (json!({"q": "  "}), "q"),
            (json!({"q": "x", "limit": 0}), "limit"),
            (json!({"q": "x", "language": "cobol"}), "language"),
            (json!({"q": "x", "semantic_ratio": 2.0}), "semantic_ratio"),
        ] {
            let (status, body) = post(s, &acme, "/search", bad).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(field),
                "{body}"
            );
        }
        // Inside a write the library is refused, and the write rolled back.
        let (status, body) = post(s, &acme, "/write-then-search", json!({})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::INTERNAL_SERVER_ERROR, "library_after_write"),
            "{body}"
        );
    }
);

llm_test!(
    a_plugin_generates_search_first_and_is_billed_for_misses,
    no_tweak,
    async |s: &Server, fake: &FakeLlm| {
        s.install_test_plugin("librarian").await;
        let t = librarian(s, "acme").await;
        let wombat = wombat_item(s, &t.api_key).await;

        // A hit: the item with its placeholder filled, no model called.
        let (status, hit) = post(
            s,
            &t,
            "/generate",
            json!({"request": "wombat invoice numbering sequence", "values": {"prefix": "ACME"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{hit}");
        assert_eq!(hit["served_by"], "library", "{hit}");
        assert_eq!(hit["items"][0]["id"], wombat.as_str(), "{hit}");
        assert!(
            hit["code"]
                .as_str()
                .is_some_and(|c| c.contains("\"ACME-{seq:06}\"")),
            "{hit}"
        );
        assert!(hit["model"].is_null() && hit["cost"].is_null(), "{hit}");
        assert!(fake.requests().is_empty(), "a hit calls no model");

        // A miss without credits is refused before any model call.
        let miss = json!({"request": "zorblax frobnicator quux telemetry with a wombat", "language": "rust"});
        let (status, body) = post(s, &t, "/generate", miss.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"),
            "{body}"
        );
        assert!(fake.requests().is_empty());

        // With credits, the model writes it; waiting for it (slower than the
        // plugin's 200 ms limit) is not the guest's time.
        grant(s, &t, "100").await;
        fake.script(
            "gpt-4o-mini",
            Script::new()
                .reply("```rust\nfn zorblax() {}\n```")
                .delay(Duration::from_millis(500)),
        );
        let (status, generated) = post(
            s,
            &t,
            "/generate",
            json!({
                "request": "zorblax frobnicator quux telemetry with a wombat",
                "language": "rust",
                "save": true,
                "model": "gpt-4o-mini",
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{generated}");
        assert_eq!(generated["served_by"], "llm", "{generated}");
        assert_eq!(generated["code"], "fn zorblax() {}\n", "{generated}");
        assert!(
            generated["cost"]
                .as_str()
                .is_some_and(|c| c.parse::<i64>().is_ok_and(|c| c > 0)),
            "{generated}"
        );
        assert_eq!(generated["model"], "gpt-4o-mini", "{generated}");
        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "one model call");
        let prompt = requests[0].body.to_string();
        assert!(
            prompt.contains("Constraints the code must follow"),
            "{prompt}"
        );
        assert!(
            prompt.contains(&wombat),
            "the closest item is in the prompt"
        );
        // Saved as the tenant's item, found by the plugin next time.
        let saved = generated["saved_item"].as_str().expect("saved item");
        let (status, item) = post(s, &t, "/get", json!({"id": saved})).await;
        assert_eq!(status, StatusCode::OK, "{item}");
        assert_eq!(item["global"], false);

        // Both count in the tenant's hit rate (the refused one does not).
        let (status, rate) = s.get("/v1/library/hit-rate", Some(&t.admin_token)).await;
        assert_eq!(status, StatusCode::OK, "{rate}");
        assert_eq!(
            (rate["requests"].as_i64(), rate["library_hits"].as_i64()),
            (Some(2), Some(1)),
            "{rate}"
        );

        let (status, body) = post(s, &t, "/generate", json!({"request": ""})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
    }
);
