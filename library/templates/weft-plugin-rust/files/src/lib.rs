{% set plugin_type = plugin_name | pascal %}
//! `{{ plugin_name }}`, a Weft plugin.
//!
//! - `GET /health`: `ok`, public, touching no capability (for probes).
//! - `GET /whoami`: the caller, or `{"anonymous": true}`.
{% if storage == 'none' and with_settings %}
//! - `GET /greeting`: the tenant's `greeting` setting.
{% elif storage == 'kv' %}
//! - `GET /counter`, `POST /counter/increment`: a counter in kv (see
//!   [`counter`]).
{% elif storage == 'docs' %}
//! - `/{{ resource | kebab }}`: {{ resource | replace('_', ' ') }} in the docs collection `{{ resource }}`
//!   (see [`{{ resource }}`]).
{% endif %}
//!
//! The handlers are thin glue between HTTP and the capabilities; the rules
//! live in plain functions that `cargo test` runs natively.

{% if storage == 'kv' %}
mod counter;
{% elif storage == 'docs' %}
mod {{ resource }};
{% endif %}
{% if storage in ['kv', 'docs'] %}

{% endif %}
use serde_json::json;
{% if storage == 'none' and with_settings %}
use weft_sdk::{Request, Response, Router, config};
{% else %}
use weft_sdk::{Request, Response, Router};
{% endif %}

struct {{ plugin_type }};

impl weft_sdk::Plugin for {{ plugin_type }} {
    fn handle(req: Request) -> Response {
        router().handle(req)
    }
}

weft_sdk::plugin!({{ plugin_type }});

/// Every route `plugin.toml` declares: the manifest is the host's access
/// rule, this is the dispatch, so the two must list the same paths.
fn router() -> Router {
    Router::new()
        .get("/health", |_| Response::text(200, "ok"))
        .get("/whoami", whoami)
{% if storage == 'none' and with_settings %}
        .get("/greeting", greeting)
{% elif storage == 'kv' %}
        .get("/counter", counter::get)
        .post("/counter/increment", counter::increment)
{% elif storage == 'docs' %}
        .get("/{{ resource | kebab }}", {{ resource }}::list)
        .post("/{{ resource | kebab }}", {{ resource }}::create)
        .get("/{{ resource | kebab }}/{id}", {{ resource }}::get)
        .put("/{{ resource | kebab }}/{id}", {{ resource }}::replace)
        .delete("/{{ resource | kebab }}/{id}", {{ resource }}::delete)
{% endif %}
}

fn whoami(req: &Request) -> Response {
    match &req.caller {
        Some(principal) => Response::json(200, principal),
        None => Response::json(200, &json!({ "anonymous": true })),
    }
}
{% if storage == 'none' and with_settings %}

fn greeting(_: &Request) -> weft_sdk::Result {
    // The host fills in the manifest's default, so this is `None` only if
    // the manifest stops declaring the setting.
    let greeting: Option<String> = config::get("greeting")?;
    Ok(Response::json(200, &json!({ "greeting": greeting })))
}
{% endif %}

#[cfg(test)]
mod tests {
    use weft_sdk::Method;

    use super::*;

    fn call(method: Method, path: &str) -> Response {
        router().handle(Request::new(method, path))
    }

    #[test]
    fn health_needs_no_capability() {
        let r = call(Method::Get, "/health");
        assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));
    }

    #[test]
    fn anonymous_callers_are_told_so() {
        let r = call(Method::Get, "/whoami");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!((r.status, body), (200, json!({ "anonymous": true })));
    }

    #[test]
    fn unknown_routes_and_methods_are_refused() {
        assert_eq!(call(Method::Get, "/nothing-here").status, 404);
        assert_eq!(call(Method::Post, "/health").status, 405);
    }
}
