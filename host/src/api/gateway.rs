//! Plugin routes: `/t/{tenant}/p/{plugin}/{*path}` → the tenant's enabled
//! plugin, bound to that tenant, under the route's access rule.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::routing::any;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{body_too_large, principal_of};
use crate::app::App;
use crate::capabilities::{Binding, types};
use crate::idempotency::{self, Claim, StoredResponse};
use crate::runtime::{CallError, CallRequest, Invocation, Reply};
use crate::tenancy::{CredentialKind, Role};

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/t/{tenant}/p/{plugin}", any(call_root))
        .route("/t/{tenant}/p/{plugin}/", any(call_root))
        .route("/t/{tenant}/p/{plugin}/{*path}", any(call))
}

/// The request id set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

async fn call_root(
    state: State<Arc<App>>,
    Path((tenant, plugin)): Path<(String, String)>,
    parts: Parts,
    body: Body,
) -> ApiResult<Response<Body>> {
    call(state, Path((tenant, plugin, String::new())), parts, body).await
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/t/{tenant}/p/{plugin}/{path}", tag = "plugin-routes", security((), ("bearer" = [])), params(("tenant" = String, Path, description = "Tenant slug"), ("plugin" = String, Path), ("path" = String, Path, description = "A route the plugin manifest declares"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key replay the first answer and are metered once")), responses((status = 200, description = "Whatever the plugin answers"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, description = "The plugin trapped or hit a limit (code names it)", body = ErrorBody), (status = 503, description = "Overloaded", body = ErrorBody), (status = 504, description = "The plugin hit its wall-clock limit", body = ErrorBody)))]
async fn call(
    State(app): State<Arc<App>>,
    Path((slug, plugin_name, _decoded_path)): Path<(String, String, String)>,
    parts: Parts,
    body: Body,
) -> ApiResult<Response<Body>> {
    let not_found = || ApiError::not_found("not_found", "no such tenant, plugin or route");
    let tenant = match app.tenant_by_slug(&slug).await {
        Ok(t) => t,
        Err(crate::tenancy::Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let span = tracing::Span::current();
    span.record("tenant", tenant.id.as_str());
    span.record("plugin", plugin_name.as_str());
    let plugin = app.runtime.plugin(&plugin_name).ok_or_else(not_found)?;
    let tenant_plugin = app.catalog.tenant_plugin(&tenant.id, &plugin_name).await?;
    let Some(tenant_plugin) = tenant_plugin.filter(|tp| tp.enabled) else {
        return Err(not_found());
    };
    let path = below_mount(parts.uri.path());
    let route = match plugin.manifest.route(parts.method.as_str(), &path) {
        Ok(route) => route,
        Err(true) => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the route does not accept this method",
            ));
        }
        Err(false) => {
            return Err(ApiError::not_found(
                "route_not_found",
                format!("{plugin_name} has no route {path}"),
            ));
        }
    };

    // The caller: any credential must be valid and of this tenant; private
    // routes need one with at least the route's role.
    let principal = principal_of(&app, &parts).await?;
    if let Some(p) = &principal
        && !p.can(&tenant.id, Role::User)
    {
        return Err(not_found());
    }
    if !route.public {
        let p = principal.as_ref().ok_or_else(ApiError::unauthorized)?;
        if !p.can(&tenant.id, route.role) {
            return Err(ApiError::forbidden(format!(
                "this route needs the {} role",
                route.role.as_str()
            )));
        }
    }

    let body = axum::body::to_bytes(body, app.config.max_body_bytes)
        .await
        .map_err(|_| body_too_large())?;
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let idempotency_key = match parts.headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY);
            Some(
                key.ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ))
                })?
                .to_owned(),
            )
        }
    };
    if let Some(key) = &idempotency_key {
        let fingerprint = hex::encode(
            Sha256::new()
                .chain_update(parts.method.as_str())
                .chain_update([0])
                .chain_update(&plugin_name)
                .chain_update([0])
                .chain_update(&path)
                .chain_update([0])
                .chain_update(parts.uri.query().unwrap_or(""))
                .chain_update([0])
                .chain_update(&body)
                .finalize(),
        );
        match idempotency::claim(&app.db, &tenant.id, key, &plugin_name, &fingerprint).await? {
            Claim::Fresh => {}
            Claim::Done(stored) => {
                return Ok(to_http(stored.status, &stored.headers, stored.body, true));
            }
            Claim::InFlight => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still running",
                ));
            }
            Claim::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                ));
            }
        }
    }

    let request = types::Request {
        method: method_of(&parts.method),
        path,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "authorization" | "cookie" | "proxy-authorization"
                )
            })
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
        caller: principal.map(|p| types::Principal {
            id: p.id,
            name: p.name,
            role: match p.role {
                Role::User => types::Role::User,
                Role::Admin => types::Role::Admin,
                Role::Superadmin => types::Role::Superadmin,
            },
            kind: match p.kind {
                CredentialKind::Session => types::CredentialKind::Session,
                CredentialKind::ApiKey => types::CredentialKind::ApiKey,
            },
        }),
        request_id: request_id.clone(),
    };
    let settings = Arc::new(plugin.manifest.effective_settings(&tenant_plugin.settings));
    let binding = Binding {
        tenant: tenant.id.clone(),
        plugin: plugin_name.clone(),
        version: plugin.manifest.plugin.version.clone(),
    };
    let call = CallRequest {
        binding,
        settings,
        idempotency_key: idempotency_key
            .clone()
            .unwrap_or_else(|| request_id.clone()),
        request_id: request_id.clone(),
        invocation: Invocation::Http(request),
    };
    let outcome = app.runtime.call(&plugin, &app.meter, call).await;

    let result = outcome.result.and_then(|reply| match reply {
        Reply::Http(response) => Ok(response),
        Reply::Handled(_) => Err(CallError::Internal),
    });
    let (status, headers, body) = match result {
        Ok(response) => {
            let status = if (200..=599).contains(&response.status) {
                response.status
            } else {
                502
            };
            (status, response.headers, response.body)
        }
        Err(err) => {
            let body =
                serde_json::json!({ "error": { "code": err.code(), "message": err.message() } })
                    .to_string();
            (
                err.status(),
                vec![("content-type".to_owned(), "application/json".to_owned())],
                body.into_bytes(),
            )
        }
    };
    if let Some(key) = &idempotency_key {
        let stored = StoredResponse {
            status,
            headers,
            body,
        };
        if status == 503 {
            // Never ran (overloaded): let a retry run it.
            idempotency::release(&app.db, &tenant.id, key).await?;
        } else {
            idempotency::complete(&app.db, &tenant.id, key, &stored).await?;
        }
        return Ok(to_http(stored.status, &stored.headers, stored.body, false));
    }
    Ok(to_http(status, &headers, body, false))
}

/// The path below `/t/{tenant}/p/{plugin}` as received: the extractor's
/// copy is percent-decoded, the plugin gets the raw one.
fn below_mount(raw: &str) -> String {
    let rest = raw
        .trim_start_matches('/')
        .splitn(5, '/')
        .nth(4)
        .unwrap_or("");
    format!("/{rest}")
}

fn method_of(method: &axum::http::Method) -> types::Method {
    match method.as_str() {
        "HEAD" => types::Method::Head,
        "POST" => types::Method::Post,
        "PUT" => types::Method::Put,
        "PATCH" => types::Method::Patch,
        "DELETE" => types::Method::Delete,
        "OPTIONS" => types::Method::Options,
        _ => types::Method::Get,
    }
}

/// The plugin's response as HTTP; headers the host owns are dropped.
fn to_http(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
    replayed: bool,
) -> Response<Body> {
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let out = response.headers_mut();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "upgrade"
                | "x-request-id"
                | "set-cookie"
        ) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.append(name, value);
        }
    }
    if replayed {
        out.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plugin_path_keeps_its_encoding() {
        assert_eq!(super::below_mount("/t/acme/p/hello"), "/");
        assert_eq!(super::below_mount("/t/acme/p/hello/"), "/");
        assert_eq!(
            super::below_mount("/t/acme/p/hello/notes/a%2Fb"),
            "/notes/a%2Fb"
        );
        assert_eq!(super::below_mount("/t/%61cme/p/hello/x/y/"), "/x/y/");
    }
}
