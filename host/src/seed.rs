//! First-run set-up: the bundled plugins installed, a superadmin and a demo
//! tenant with an admin user and an API key, the secrets printed once.

use std::sync::Arc;

use serde_json::Map;

use crate::app::App;
use crate::bundled::BUNDLED;
use crate::capabilities::{Binding, types};
use crate::catalog;
use crate::ids::TenantId;
use crate::runtime::{self, CallRequest, Invocation, Reply};
use crate::tenancy::{NewUser, Role, User};

/// Installs bundled plugins whose version is not installed yet.
pub async fn install_bundled(app: &App) -> anyhow::Result<()> {
    for (name, manifest, component) in BUNDLED {
        match app.runtime.install(manifest, component).await {
            Ok(installed) => {
                tracing::info!(plugin = %installed.name, version = %installed.version, "installed bundled plugin")
            }
            Err(runtime::Error::Catalog(catalog::Error::VersionExists(_, version))) => {
                let installed = app.catalog.version_hash(name, &version).await?;
                let bundled = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(component));
                if installed != bundled {
                    tracing::warn!(
                        plugin = name,
                        version = %version,
                        "the bundled component changed but its version did not: still serving the installed build; bump plugin.version to install it"
                    );
                }
            }
            Err(err) => return Err(anyhow::anyhow!("bundled plugin {name}: {err}")),
        }
    }
    Ok(())
}

/// Credits the demo tenant starts with.
const DEMO_CREDITS: i64 = 1_000;

/// Creates the demo tenant and its credentials if there are no tenants yet.
/// Returns the lines to print (secrets shown only this once).
pub async fn seed_demo(app: &App) -> anyhow::Result<Option<String>> {
    if !app.tenants.list().await?.is_empty() {
        return Ok(None);
    }
    let root_password = random_password();
    app.users
        .create(NewUser {
            tenant: None,
            email: "root@weft.local",
            name: "Platform operator",
            password: &root_password,
            role: Role::Superadmin,
        })
        .await?;
    let tenant = app.tenants.create("demo", "Demo Business").await?;
    let admin_password = random_password();
    let admin = app
        .users
        .create(NewUser {
            tenant: Some(&tenant.id),
            email: "admin@demo.local",
            name: "Demo Admin",
            password: &admin_password,
            role: Role::Admin,
        })
        .await?;
    let key = app
        .api_keys
        .create(&tenant.id, "demo key", Role::Admin, None)
        .await?;
    for (name, _, _) in BUNDLED {
        app.catalog.set_enabled(&tenant.id, name, true).await?;
    }
    seed_forum(app, &tenant.id, &admin).await;
    // Credits to try the LLM gateway with (providers need their keys).
    app.billing
        .ledger
        .append(
            &tenant.id,
            &crate::billing::NewEntry {
                kind: crate::billing::EntryKind::Grant,
                amount: crate::billing::Micro::credits(DEMO_CREDITS),
                idempotency_key: "seed:demo-credits",
                reason: Some("demo credits"),
                reference: None,
                actor: Some("system"),
            },
        )
        .await?;
    let base = format!("http://{}", app.config.bind);
    Ok(Some(format!(
        "\n  Weft demo seeded (shown once; store these now)\n\
         \n  superadmin   root@weft.local / {root_password}\
         \n  tenant       demo  (admin@demo.local / {admin_password})\
         \n  API key      {}\n\
         \n  try: curl {base}/t/demo/p/hello/hello\
         \n       curl -H 'Authorization: Bearer {}' -X POST {base}/t/demo/p/hello/counter/increment\
         \n       curl {base}/t/demo/p/forum/categories\n",
        key.secret, key.secret
    )))
}

/// Gives the demo forum its first category, made by the demo admin through
/// the forum's own route (a forum with nowhere to post is no demo). A
/// failure is logged: the demo works without it.
async fn seed_forum(app: &App, tenant: &TenantId, admin: &User) {
    let Some(plugin) = app.runtime.plugin("forum") else {
        return;
    };
    let body = br#"{"name":"General","description":"Anything about this business: questions, ideas, news.","read":"public","post":"users"}"#;
    let call = CallRequest {
        binding: Binding {
            tenant: tenant.clone(),
            plugin: "forum".into(),
            version: plugin.manifest.plugin.version.clone(),
        },
        settings: Arc::new(plugin.manifest.effective_settings(&Map::new())),
        idempotency_key: "seed:forum:general".into(),
        request_id: "seed".into(),
        invocation: Invocation::Http(types::Request {
            method: types::Method::Post,
            path: "/categories".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_vec(),
            caller: Some(types::Principal {
                id: admin.id.to_string(),
                name: admin.name.clone(),
                role: types::Role::Admin,
                kind: types::CredentialKind::Session,
            }),
            request_id: "seed".into(),
        }),
    };
    match app.runtime.call(&plugin, &app.meter, call).await.result {
        Ok(Reply::Http(r)) if r.status == 201 => {}
        other => tracing::warn!(outcome = ?other.map(|_| ()), "the demo forum got no category"),
    }
}

fn random_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
