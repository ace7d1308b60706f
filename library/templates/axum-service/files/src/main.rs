//! Starts `{{ service_name }}`: configuration from the environment, logging,
{% if database != 'none' %}
//! the database (migrated at start), then the server until Ctrl-C or SIGTERM.
{% else %}
//! then the server until Ctrl-C or SIGTERM.
{% endif %}

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

{% if database != 'none' %}
use {{ service_name | snake }}::{AppState, app, db};
{% else %}
use {{ service_name | snake }}::{AppState, app};
{% endif %}

/// Where to listen unless `BIND_ADDR` says otherwise: loopback, so a
/// development build is not reachable from the network by accident.
const DEFAULT_BIND: &str = "127.0.0.1:{{ port }}";
{% if database == 'sqlite' %}
const DEFAULT_DATABASE_URL: &str = "sqlite://{{ service_name }}.db";
{% endif %}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=debug")),
        )
        .init();

    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let addr: SocketAddr = bind
        .parse()
        .with_context(|| format!("BIND_ADDR {bind:?} is not an address such as 0.0.0.0:{{ port }}"))?;
{% if database == 'sqlite' %}
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let state = AppState {
        db: db::connect(&database_url)
            .await
            .context("opening the database")?,
    };
{% elif database == 'postgres' %}
    let database_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL must be set, e.g. postgres://user:password@localhost/{{ service_name | snake }}")?;
    let state = AppState {
        db: db::connect(&database_url)
            .await
            .context("connecting to the database")?,
    };
{% else %}
    let state = AppState::default();
{% endif %}

    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send);
/// the server then stops accepting and finishes the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
