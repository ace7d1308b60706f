//! Credentials and roles: 401 for bad credentials, 403/404 across roles and
//! tenants, superadmin-only routes, revocation.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::common::{Server, code};

both_engines!(credentials_and_roles, async |s: &Server| {
    let a = s.tenant("alpha").await;
    let _b = s.tenant("beta").await;
    s.enable(&a, "hello").await;

    // 401: no, malformed, forged and wrong credentials.
    let (status, body) = s.get("/t/alpha/p/hello/counter", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{body}"
    );
    for bad in [
        "wft_0000000000000000000000000000000000000000000000000",
        "not.a.jwt",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        let (status, body) = s.get("/t/alpha/p/hello/counter", Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
        let (status, _) = s.get("/v1/me", Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = s
        .post(
            "/v1/auth/login",
            None,
            json!({"tenant": "alpha", "email": "admin@alpha.test", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s
        .post(
            "/v1/auth/login",
            None,
            json!({"tenant": "beta", "email": "admin@alpha.test", "password": "admin-password"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a user signs in only to their own tenant"
    );

    // Public route: anonymous is fine.
    let (status, body) = s.get("/t/alpha/p/hello/hello", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A plain user: may call user routes, not admin routes.
    let (status, body) = s
        .post(
            "/v1/tenants/alpha/users",
            Some(&a.admin_token),
            json!({"email": "u@alpha.test", "name": "U", "password": "user-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, login) = s
        .post(
            "/v1/auth/login",
            None,
            json!({"tenant": "alpha", "email": "u@alpha.test", "password": "user-password"}),
        )
        .await;
    let user = login["token"].as_str().expect("token").to_owned();
    let (status, body) = s.get("/t/alpha/p/hello/whoami", Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.to_string().contains("user"),
        "the plugin sees the caller's role: {body}"
    );
    let (status, body) = s
        .post(
            "/v1/tenants/alpha/api-keys",
            Some(&user),
            json!({"name": "k"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, _) = s.get("/v1/usage", Some(&user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A tenant admin: not across tenants, not superadmin routes.
    let (status, body) = s.get("/v1/tenants/beta/users", Some(&a.admin_token)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's resources are invisible: {body}"
    );
    let (status, _) = s.get("/v1/tenants/beta/users", Some(&a.api_key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .post(
            "/v1/tenants",
            Some(&a.admin_token),
            json!({"slug": "gamma", "name": "G"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, _) = s.get("/v1/tenants", Some(&a.admin_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .post(
            "/v1/plugins",
            Some(&a.admin_token),
            json!({"manifest": "", "component_base64": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .put(
            "/v1/tenants/alpha/quotas",
            Some(&a.admin_token),
            json!({"keys": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The superadmin reaches every tenant.
    let (status, _) = s.get("/v1/tenants/beta/users", Some(&s.root_token)).await;
    assert_eq!(status, StatusCode::OK);

    // API keys: listed by prefix only, revocable at once.
    let (status, created) = s
        .post(
            "/v1/tenants/alpha/api-keys",
            Some(&a.admin_token),
            json!({"name": "temp", "role": "user"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let (_, list) = s
        .get("/v1/tenants/alpha/api-keys", Some(&a.admin_token))
        .await;
    assert!(
        !list.to_string().contains(&secret),
        "secrets are shown once only"
    );
    assert!(
        list.to_string().contains(&secret[..12]),
        "the prefix is visible"
    );
    let (status, _) = s.get("/t/alpha/p/hello/counter", Some(&secret)).await;
    assert_eq!(status, StatusCode::OK);
    let key_id = created["id"].as_str().expect("id");
    let (status, body) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/alpha/api-keys/{key_id}"),
            Some(&a.admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s.get("/t/alpha/p/hello/counter", Some(&secret)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked key stops working at once"
    );
});
