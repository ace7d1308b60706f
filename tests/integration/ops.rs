//! Health, readiness, Prometheus metrics and the OpenAPI document.

use reqwest::StatusCode;

use crate::both_engines;
use crate::common::Server;

both_engines!(health_metrics_and_openapi, async |s: &Server| {
    let t = s.tenant("ops").await;
    s.enable(&t, "hello").await;
    let (status, _) = s.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _) = s.get("/t/ops/p/hello/hello", None).await;
    assert_eq!(status, StatusCode::OK);
    let resp = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/plain"))
    );
    let text = resp.text().await.expect("text");
    for needle in [
        "weft_plugin_calls_total{",
        "plugin=\"hello\"",
        "outcome=\"ok\"",
        "weft_plugin_call_duration_seconds_bucket",
        "weft_plugin_fuel_total",
        "weft_http_responses_total",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let (status, doc) = s.get("/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{paths:?}");
    // Every documented path is routed (a request never gets the fallback 404).
    for path in paths.keys() {
        let concrete = path
            .replace("{tenant}", "ops")
            .replace("{plugin}", "hello")
            .replace("{path}", "hello")
            .replace("{name}", "hello")
            .replace("{key}", "none");
        let (status, body) = s.get(&concrete, Some(&t.admin_token)).await;
        assert!(
            !(status == StatusCode::NOT_FOUND && body["error"]["code"] == "route_not_found"),
            "{path} is documented but not routed"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
});
