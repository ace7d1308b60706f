//! Exactly one usage event per call, also when a client retries with the
//! same Idempotency-Key; aggregates by day and plugin.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::common::{Server, code};

async fn events(s: &Server, slug: &str) -> i64 {
    let tenant = s.app.tenants.by_slug(slug).await.expect("tenant");
    weft::metering::event_count(&s.app.db, &tenant.id)
        .await
        .expect("count")
}

both_engines!(one_usage_event_per_call, async |s: &Server| {
    let t = s.tenant("meter").await;
    s.enable(&t, "hello").await;
    assert_eq!(events(s, "meter").await, 0);
    for _ in 0..5 {
        let (status, _) = s.get("/t/meter/p/hello/hello", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Acknowledged calls are already committed (durable ack).
    assert_eq!(events(s, "meter").await, 5);

    // A retried request with the same key runs once and is metered once.
    let headers = [("idempotency-key", "order-42")];
    let (status, h1, first) = s
        .send_raw(
            Method::POST,
            "/t/meter/p/hello/counter/increment",
            Some(&t.api_key),
            Some(json!({})),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(h1.get("idempotent-replayed").is_none());
    let (status, h2, second) = s
        .send_raw(
            Method::POST,
            "/t/meter/p/hello/counter/increment",
            Some(&t.api_key),
            Some(json!({})),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second, "the retry replays the first answer");
    assert_eq!(
        h2.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let (_, counter) = s.get("/t/meter/p/hello/counter", Some(&t.api_key)).await;
    assert_eq!(
        counter["value"], 1,
        "the retry did not run the plugin again"
    );
    assert_eq!(
        events(s, "meter").await,
        5 + 1 + 1,
        "5 hellos, 1 increment (retry not counted), 1 counter read"
    );
    // The same key for another request is refused.
    let (status, _, body) = s
        .send_raw(
            Method::POST,
            "/t/meter/p/hello/counter/increment",
            Some(&t.api_key),
            Some(json!({"by": 5})),
            &headers,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{body}"
    );

    // Aggregates for the tenant admin.
    let (status, usage) = s.get("/v1/usage", Some(&t.admin_token)).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let rows = usage["usage"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{usage}");
    assert_eq!(rows[0]["plugin"], "hello");
    assert_eq!(rows[0]["calls"], 7);
    assert_eq!(rows[0]["errors"], 0);
    assert!(rows[0]["fuel"].as_i64().is_some_and(|f| f > 0), "{usage}");
    let (status, _) = s
        .get("/v1/usage?from=2026-13-01", Some(&t.admin_token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});
