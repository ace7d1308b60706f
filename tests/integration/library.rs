//! The code library over HTTP: items and their versions, hybrid search
//! with explanations, tenant isolation, bad input, and search without the
//! embedding model.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;
use crate::{both_engines, both_engines_with};

fn item(title: &str, code: &str) -> Value {
    json!({
        "title": title,
        "description": format!("{title}: a test item."),
        "language": "rust",
        "kind": "snippet",
        "tags": ["test-only"],
        "code": code,
    })
}

fn ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["item"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

both_engines!(items_are_versioned_rated_and_diffed, async |s: &Server| {
    let t = s.tenant("acme").await;
    let key = Some(t.api_key.as_str());
    let (status, created) = s
        .post(
            "/v1/library/items",
            key,
            item(
                "Quokka retry loop",
                "fn quokka_retry() {\n    for _ in 0..3 {}\n}\n",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"], 1);
    assert_eq!(created["global"], false);
    let id = created["id"].as_str().expect("id").to_owned();
    // New and untested: 0.3·0.5 + 0.2·0.6 + 0.15 + 0.1 (see quality.rs).
    assert_eq!(created["quality"], 0.52);

    let mut v2 = item(
        "Quokka retry loop with backoff",
        "fn quokka_retry() {\n    for i in 0..5 {\n        sleep(i);\n    }\n}\n",
    );
    v2["tags"] = json!(["test-only", "backoff"]);
    let (status, updated) = s.put(&format!("/v1/library/items/{id}"), key, v2).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);

    let (_, versions) = s
        .get(&format!("/v1/library/items/{id}/versions"), key)
        .await;
    let list = versions["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(list[0]["title"], "Quokka retry loop");
    let (status, old) = s
        .get(&format!("/v1/library/items/{id}/versions/1"), key)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        old["code"],
        "fn quokka_retry() {\n    for _ in 0..3 {}\n}\n"
    );
    assert_eq!(old["current_version"], 2);
    let (status, diff) = s
        .get(&format!("/v1/library/items/{id}/diff?from=1&to=2"), key)
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["lines_removed"], 1, "{diff}");
    assert_eq!(diff["lines_added"], 3, "{diff}");
    assert_eq!(
        diff["fields_changed"],
        json!(["title", "description", "tags"])
    );
    let unified = diff["unified"].as_str().expect("unified");
    assert!(
        unified.contains("-    for _ in 0..3 {}") && unified.contains("+        sleep(i);"),
        "{unified}"
    );

    // The old wording no longer finds it; the new one does.
    let (_, found) = s
        .get(
            "/v1/library/search?q=quokka%20backoff&semantic_ratio=0&explain=true",
            key,
        )
        .await;
    assert_eq!(ids(&found).first(), Some(&id), "{found}");
    let why = &found["hits"][0]["why"]["keyword"];
    assert_eq!(
        why["matched"]["title"],
        json!(["quokka", "backoff"]),
        "{found}"
    );

    let (status, rated) = s
        .post(
            &format!("/v1/library/items/{id}/rating"),
            key,
            json!({"stars": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["ratings"], 1);
    assert_eq!(rated["average_rating"], 5.0);
    // Rating again replaces the first.
    let (_, rated) = s
        .post(
            &format!("/v1/library/items/{id}/rating"),
            key,
            json!({"stars": 4}),
        )
        .await;
    assert_eq!(rated["ratings"], 1);
    assert_eq!(rated["average_rating"], 4.0);
    let (_, used) = s
        .post(&format!("/v1/library/items/{id}/uses"), key, json!({}))
        .await;
    assert_eq!(used["uses"], 1);
    assert!(used["quality"].as_f64() > Some(0.52), "{used}");

    let (status, _) = s.delete(&format!("/v1/library/items/{id}"), key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.get(&format!("/v1/library/items/{id}"), key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, found) = s
        .get("/v1/library/search?q=quokka%20retry%20loop&limit=100", key)
        .await;
    assert!(!ids(&found).contains(&id), "{found}");
});

both_engines!(
    a_tenants_own_items_never_reach_another_tenant,
    async |s: &Server| {
        let a = s.tenant("alpha").await;
        let b = s.tenant("beta").await;
        let (status, secret) = s
            .post(
                "/v1/library/items",
                Some(&a.api_key),
                item(
                    "Zanzibar ledger reconciler",
                    "fn reconcile_zanzibar_ledger() {}",
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{secret}");
        let id = secret["id"].as_str().expect("id").to_owned();

        for ratio in ["0", "0.5", "1"] {
            let q = format!(
                "/v1/library/search?q=zanzibar%20ledger%20reconciler&semantic_ratio={ratio}&limit=100"
            );
            let (status, own) = s.get(&q, Some(&a.api_key)).await;
            assert_eq!(status, StatusCode::OK, "{own}");
            if ratio != "1" || own["mode"] == "hybrid" {
                assert!(
                    ids(&own).contains(&id),
                    "alpha finds its item at ratio {ratio}: {own}"
                );
            }
            let (_, other) = s.get(&q, Some(&b.api_key)).await;
            assert!(
                !ids(&other).contains(&id),
                "beta must not see alpha's item (ratio {ratio}): {other}"
            );
            let (_, global) = s.get(&q, Some(&s.root_token)).await;
            assert!(
                !ids(&global).contains(&id),
                "the global view holds no tenant item: {global}"
            );
        }
        for path in [
            format!("/v1/library/items/{id}"),
            format!("/v1/library/items/{id}/versions"),
        ] {
            let (status, body) = s.get(&path, Some(&b.api_key)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        let (status, _) = s
            .put(
                &format!("/v1/library/items/{id}"),
                Some(&b.api_key),
                item("Mine now", "fn stolen() {}"),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = s
            .delete(&format!("/v1/library/items/{id}"), Some(&b.api_key))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = s
            .post(
                &format!("/v1/library/items/{id}/rating"),
                Some(&b.api_key),
                json!({"stars": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The same code in beta is beta's own item, not a duplicate of alpha's.
        let (status, body) = s
            .post(
                "/v1/library/items",
                Some(&b.api_key),
                item("Zanzibar copy", "fn reconcile_zanzibar_ledger() {}"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, still) = s
            .get(&format!("/v1/library/items/{id}"), Some(&a.api_key))
            .await;
        assert_eq!(still["title"], "Zanzibar ledger reconciler");
    }
);

both_engines!(
    bad_input_gets_a_clear_error_and_changes_nothing,
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let mut bad = item("Xyzzyqux", "fn xyzzyqux() {}");
        bad["language"] = json!("cobol");
        let (status, body) = s.post("/v1/library/items", key, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_input");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("language:")),
            "{body}"
        );
        let mut bad = item("Xyzzyqux", "fn xyzzyqux() {}");
        bad["placeholders"] = json!([{"name": "absent"}]);
        let (status, body) = s.post("/v1/library/items", key, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("absent")),
            "{body}"
        );
        let (_, found) = s
            .get("/v1/library/search?q=xyzzyqux&semantic_ratio=0", key)
            .await;
        assert!(ids(&found).is_empty(), "nothing was stored: {found}");

        let (status, first) = s
            .post("/v1/library/items", key, item("Once", "fn once() {}\n"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, dup) = s
            .post(
                "/v1/library/items",
                key,
                item("Twice", "\n\nfn once() {}   \n"),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{dup}");
        assert_eq!(dup["error"]["code"], "duplicate_item");
        assert_eq!(dup["error"]["item_id"], first["id"]);

        for q in [
            "/v1/library/search?q=",
            "/v1/library/search?q=x&semantic_ratio=2",
            "/v1/library/search?q=x&limit=0",
            "/v1/library/search?q=x&language=cobol",
            "/v1/library/search?q=x&min_quality=-1",
        ] {
            let (status, body) = s.get(q, key).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
            assert_eq!(body["error"]["code"], "invalid_input", "{q}");
        }
        let (status, body) = s
            .post(
                &format!(
                    "/v1/library/items/{}/rating",
                    first["id"].as_str().unwrap_or("")
                ),
                key,
                json!({"stars": 9}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = s.get("/v1/library/items/item-nope/diff?from=1", key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = s.get("/v1/library/search?q=x", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
);

both_engines!(
    seed_items_are_global_and_found_by_meaning_and_words,
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let (status, body) = s
            .get(
                "/v1/library/search?q=stop%20the%20server%20cleanly%20on%20ctrl-c&explain=true",
                key,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let hits = body["hits"].as_array().expect("hits");
        assert!(!hits.is_empty(), "{body}");
        assert!(hits.iter().all(|h| h["item"]["global"] == true));
        assert!(
            hits.iter().all(|h| h["item"].get("code").is_none()),
            "code only when asked"
        );
        let top3: Vec<&str> = hits
            .iter()
            .take(3)
            .filter_map(|h| h["item"]["id"].as_str())
            .collect();
        assert!(top3.contains(&"rust-axum-graceful-shutdown"), "{top3:?}");
        if std::env::var_os("WEFT_EMBEDDINGS_DIR").is_some() {
            assert_eq!(body["mode"], "hybrid", "{body}");
            assert!(
                hits[0]["why"]["semantic"]["similarity"].as_f64() > Some(0.2),
                "{body}"
            );
        }
        let (_, rust_only) = s
            .get("/v1/library/search?q=table&language=sql&code=true", key)
            .await;
        let hits = rust_only["hits"].as_array().expect("hits");
        assert!(
            !hits.is_empty() && hits.iter().all(|h| h["item"]["language"] == "sql"),
            "{rust_only}"
        );
        assert!(
            hits[0]["item"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
    }
);

both_engines_with!(
    without_the_model_search_is_by_keywords,
    |c: &mut weft::config::Config| {
        c.library.embeddings_dir = Some(c.data_dir.join("no-model-here"));
    },
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let (status, created) = s
            .post(
                "/v1/library/items",
                key,
                item("Wombat cache warmer", "fn warm_wombat_cache() {}"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let (status, body) = s
            .get("/v1/library/search?q=wombat%20cache&semantic_ratio=1", key)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mode"], "keyword");
        assert_eq!(
            ids(&body).first().map(String::as_str),
            created["id"].as_str(),
            "{body}"
        );
    }
);

both_engines!(
    another_process_sees_changes_after_its_refresh,
    async |s: &Server| {
        let t = s.tenant("acme").await;
        let key = Some(t.api_key.as_str());
        let tenant = s.app.tenant_by_slug("acme").await.expect("tenant").id;
        // A second serving process over the same database.
        let other = weft::library::Library::new(
            s.app.db.clone(),
            s.app.config.library.clone(),
            s.app.config.data_dir.clone(),
            s.app.config.cache_dir(),
        );
        let q = weft::library::SearchParams {
            q: "quokka ledger reconciliation".into(),
            tags: vec!["test-only".into()],
            semantic_ratio: Some(0.0),
            ..Default::default()
        };
        let found = |out: &weft::library::SearchOutcome| -> Vec<String> {
            out.hits.iter().map(|h| h.item.id.clone()).collect()
        };
        assert!(found(&other.search(Some(&tenant), &q).await.expect("search")).is_empty());

        let (status, created) = s
            .post(
                "/v1/library/items",
                key,
                item(
                    "Quokka ledger reconciliation",
                    "pub fn reconcile_quokka_ledger() {}\n",
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().expect("id").to_owned();
        // Its indexes are its own until it reads the change.
        assert!(found(&other.search(Some(&tenant), &q).await.expect("search")).is_empty());
        assert!(other.read_changes().await.expect("refresh") >= 1);
        assert_eq!(
            found(&other.search(Some(&tenant), &q).await.expect("search")),
            std::slice::from_ref(&id)
        );
        // Nothing new: nothing applied again.
        assert_eq!(other.read_changes().await.expect("refresh"), 0);

        // An edit and a delete travel the same way.
        let (status, body) = s
            .put(
                &format!("/v1/library/items/{id}"),
                Some(&t.admin_token),
                item(
                    "Wallaby ledger reconciliation",
                    "pub fn reconcile_wallaby_ledger() {}\n",
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        other.read_changes().await.expect("refresh");
        let wallaby = weft::library::SearchParams {
            q: "wallaby".into(),
            ..q.clone()
        };
        assert_eq!(
            found(&other.search(Some(&tenant), &wallaby).await.expect("search")),
            std::slice::from_ref(&id)
        );
        let (status, _) = s
            .delete(&format!("/v1/library/items/{id}"), Some(&t.admin_token))
            .await;
        assert!(status.is_success(), "{status}");
        assert_eq!(other.read_changes().await.expect("refresh"), 1);
        assert!(found(&other.search(Some(&tenant), &wallaby).await.expect("search")).is_empty());
    }
);
