//! Two tenants using the same plugin never see each other's data.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Server, code};
use crate::{both_engines, both_engines_with};

both_engines!(kv_and_docs_are_per_tenant, async |s: &Server| {
    let a = s.tenant("alpha").await;
    let b = s.tenant("beta").await;
    s.enable(&a, "hello").await;
    s.enable(&b, "hello").await;

    for _ in 0..3 {
        let (status, body) = s
            .post(
                "/t/alpha/p/hello/counter/increment",
                Some(&a.api_key),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, body) = s.get("/t/alpha/p/hello/counter", Some(&a.api_key)).await;
    assert_eq!(body["value"], 3);
    let (_, body) = s.get("/t/beta/p/hello/counter", Some(&b.api_key)).await;
    assert_eq!(body["value"], 0, "beta must not see alpha's counter");

    let (status, note) = s
        .post(
            "/t/alpha/p/hello/notes",
            Some(&a.api_key),
            json!({"title": "secret plan", "body": "alpha only"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let id = note["id"].as_str().expect("note id").to_owned();
    let (status, _) = s
        .get(&format!("/t/alpha/p/hello/notes/{id}"), Some(&a.api_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .get(&format!("/t/beta/p/hello/notes/{id}"), Some(&b.api_key))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "beta must not read alpha's note by id"
    );
    let (_, list) = s.get("/t/beta/p/hello/notes", Some(&b.api_key)).await;
    assert_eq!(list["notes"].as_array().map(Vec::len), Some(0), "{list}");

    // A credential of tenant B on tenant A's routes is refused outright.
    let (status, body) = s.get("/t/alpha/p/hello/counter", Some(&b.api_key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
});

/// The probe writes its own keys first (to get real cursors to tamper
/// with), then makes a few hundred store calls: on an unoptimized host
/// under the whole suite's load that can pass SQLite's 250 ms write-hold
/// limit, which this test is not about.
fn long_write_hold(c: &mut weft::config::Config) {
    c.runtime.max_write_hold_ms = 5_000;
}

both_engines_with!(
    snoop_plugin_cannot_reach_another_tenant,
    long_write_hold,
    async |s: &Server| {
        s.install_test_plugin("snoop").await;
        let a = s.tenant("alpha").await;
        let b = s.tenant("beta").await;
        s.enable(&a, "snoop").await;
        s.enable(&b, "snoop").await;
        let secret = "ALPHA-SECRET-7f3a";
        let (status, body) = s
            .post(
                "/t/alpha/p/snoop/plant",
                Some(&a.api_key),
                json!({"secret": secret}),
            )
            .await;
        assert!(status.is_success(), "{body}");

        // The probe works: alpha finds its own secret...
        let (status, own) = s.get("/t/alpha/p/snoop/probe", Some(&a.api_key)).await;
        assert_eq!(status, StatusCode::OK, "{own}");
        assert!(
            own.to_string().contains(secret),
            "the probe must find the secret in its own tenant: {own}"
        );
        // ...and beta, trying every trick, finds nothing of alpha's.
        let (status, theirs) = s.get("/t/beta/p/snoop/probe", Some(&b.api_key)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "every trick must end in a clean error, not a trap: {theirs}"
        );
        assert!(
            !theirs.to_string().contains(secret),
            "beta reached alpha's data: {theirs}"
        );
        assert!(
            theirs["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "bad keys/cursors must be refused: {theirs}"
        );
    }
);

both_engines!(row_level_security_is_a_second_wall, async |s: &Server| {
    use weft::db::{Engine, Mode, Scope};
    let a = s.tenant("alpha").await;
    let b = s.tenant("beta").await;
    s.enable(&a, "hello").await;
    s.enable(&b, "hello").await;
    let (status, _) = s
        .post(
            "/t/alpha/p/hello/counter/increment",
            Some(&a.api_key),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    if s.app.db.engine() != Engine::Postgres {
        return;
    }
    assert!(
        !s.app.db.rls_bypassed().await.expect("role check"),
        "tests must run as an ordinary role"
    );
    let beta = s.app.tenants.by_slug(&b.slug).await.expect("beta");
    // A query that forgets its tenant filter still sees only the bound tenant.
    let mut tx = s
        .app
        .db
        .begin(Scope::Tenant(&beta.id), Mode::Read)
        .await
        .expect("tx");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv_entries")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(
        rows, 0,
        "RLS must hide alpha's rows from a beta-bound transaction"
    );
    drop(tx);
    let mut tx = s
        .app
        .db
        .begin(Scope::Platform, Mode::Read)
        .await
        .expect("tx");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv_entries")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert!(rows >= 1, "platform scope sees every tenant");
    drop(tx);
    // Without any binding, nothing at all.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv_entries")
        .fetch_one(s.app.db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 0, "an unbound statement sees no tenant rows");
    let _ = code;
});
