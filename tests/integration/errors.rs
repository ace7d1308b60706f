//! Bad input gets a clear 4xx in the one error shape, never a panic.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::common::{Server, code};

both_engines!(bad_requests_get_clear_errors, async |s: &Server| {
    let t = s.tenant("acme").await;
    s.enable(&t, "hello").await;

    // Malformed JSON and wrong content type on an API route.
    let resp = s
        .client
        .post(format!("{}/v1/auth/login", s.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(code(&body), "malformed_json");
    let resp = s
        .client
        .post(format!("{}/v1/auth/login", s.base))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Missing fields.
    let (status, body) = s.post("/v1/auth/login", None, json!({"email": "x"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input"),
        "{body}"
    );

    // Oversized bodies, on the API and on a plugin route.
    let big = "x".repeat(2 << 20);
    let (status, body) = s
        .post(
            "/v1/auth/login",
            None,
            json!({"email": big, "password": "p"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/t/acme/p/hello/notes",
            Some(&t.api_key),
            json!({"title": "t", "body": big}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        "{body}"
    );

    // Unknown routes and methods, platform and plugin.
    let (status, body) = s.get("/v1/nope", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found"),
        "{body}"
    );
    let (status, body) = s.send(Method::DELETE, "/v1/auth/login", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        "{body}"
    );
    let (status, body) = s.get("/t/acme/p/hello/nope", Some(&t.api_key)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found"),
        "{body}"
    );
    let (status, body) = s
        .send(Method::PATCH, "/t/acme/p/hello/hello", None, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        "{body}"
    );
    let (status, body) = s.get("/t/nobody/p/hello/hello", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );

    // Invalid plugin input is the plugin's 4xx, and nothing is written.
    let (status, body) = s
        .post(
            "/t/acme/p/hello/notes",
            Some(&t.api_key),
            json!({"title": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, list) = s.get("/t/acme/p/hello/notes", Some(&t.api_key)).await;
    assert_eq!(list["notes"].as_array().map(Vec::len), Some(0), "{list}");

    // Invalid admin input.
    let (status, body) = s
        .post(
            "/v1/tenants",
            Some(&s.root_token),
            json!({"slug": "Bad Slug!", "name": "x"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/v1/tenants",
            Some(&s.root_token),
            json!({"slug": "acme", "name": "again"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (status, body) = s
        .put(
            "/v1/tenants/acme/plugins/hello",
            Some(&t.admin_token),
            json!({"settings": {"greeting": 5}}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings"),
        "{body}"
    );
    let (status, body) = s
        .put(
            "/v1/tenants/acme/plugins/hello",
            Some(&t.admin_token),
            json!({"settings": {"greeting": "Ahoy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = s.get("/t/acme/p/hello/greeting", None).await;
    assert_eq!(
        body["greeting"], "Ahoy",
        "settings reach the plugin: {body}"
    );
});
