//! `/v1/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' annotations at compile time (no UI assets are downloaded).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::App;

#[derive(OpenApi)]
#[openapi(
    info(title = "Weft", description = "Multi-tenant WebAssembly plugin platform: administration API and plugin routes."),
    paths(
        super::admin::login, super::admin::me, super::admin::create_tenant, super::admin::list_tenants,
        super::admin::get_tenant, super::admin::set_quotas, super::admin::create_user, super::admin::list_users,
        super::admin::create_key, super::admin::list_keys, super::admin::revoke_key,
        super::plugins::list, super::plugins::install, super::plugins::routes, super::plugins::tenant_plugins,
        super::plugins::tenant_plugin, super::plugins::configure, super::plugins::logs,
        super::usage::own_usage, super::usage::tenant_usage,
        super::events::list, super::events::one, super::events::replay, super::events::schedules,
        super::ops::healthz, super::ops::readyz, super::ops::metrics,
        super::gateway::call,
        super::llm::complete, super::llm::estimate, super::llm::embed, super::llm::models,
        super::llm::own_keys, super::llm::set_own_key, super::llm::delete_own_key,
        super::billing::own_account, super::billing::tenant_account, super::billing::set_account,
        super::billing::grant, super::billing::own_ledger, super::billing::tenant_ledger,
        super::billing::own_usage, super::billing::my_usage, super::billing::tenant_usage,
        super::billing::plans, super::billing::packages, super::billing::put_package,
        super::billing::user_limits, super::billing::set_user_limits,
        super::billing::own_invoices, super::billing::own_invoice, super::billing::tenant_invoices,
        super::billing::tenant_invoice, super::billing::make_invoice,
        super::billing::checkout, super::billing::stripe_webhook,
        super::messaging::list, super::messaging::one, super::messaging::replay,
        super::messaging::provider, super::messaging::set_provider, super::messaging::delete_provider,
        super::messaging::dev_outbox, super::messaging::notifications, super::messaging::read_one,
        super::messaging::read_all, super::messaging::webhook,
        super::library::search, super::library::create, super::library::one, super::library::update,
        super::library::remove, super::library::versions, super::library::version, super::library::diff,
        super::library::rate, super::library::record_use, super::library::hit_rate,
        super::library::generate, super::library::constraints, super::library::constraint, super::library::check,
        super::library::templates, super::library::template, super::library::generate_template,
        super::library::research,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sessions"),
        (name = "tenants", description = "Tenants (superadmin) and their quotas"),
        (name = "users", description = "Users of a tenant"),
        (name = "api-keys", description = "API keys of a tenant"),
        (name = "plugins", description = "Catalog, install, enablement, settings, logs"),
        (name = "usage", description = "Metered usage"),
        (name = "events", description = "Event deliveries, dead letters and schedule runs of a tenant"),
        (name = "plugin-routes", description = "Routes served by a tenant's enabled plugins"),
        (name = "ops", description = "Health and metrics"),
        (name = "llm", description = "The LLM gateway: completions, estimates, embeddings, the model catalog"),
        (name = "billing", description = "Credits ledger, plans, packages, LLM usage, grants"),
        (name = "messaging", description = "The outbox: a tenant's messages and providers, the dev inbox, in-app notifications, provider status webhooks"),
        (name = "library", description = "The code library: hybrid search, items and their versions, ratings, the library hit rate"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from /v1/auth/login, or an API key (wft_...)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// Routes of this area.
pub fn router() -> Router<Arc<App>> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                document(),
            )
        }),
    )
}
